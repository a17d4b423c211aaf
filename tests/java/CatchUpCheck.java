import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;

/**
 * Apache ZooKeeper's own Java client holding a persistent recursive watch on /w and a
 * one-shot data watch on /w/one, driven step by step by tests/tests/watch_catchup.rs over
 * stdin/stdout: READY, then 10 live events (LIVE-OK), DISCONNECTED after the test cuts its
 * connection, then (after GO) every event that arrives once it has reconnected, one
 * "E type path" line each, and DONE.
 */
public class CatchUpCheck {
    public static void main(String[] args) throws Exception {
        BlockingQueue<WatchedEvent> states = new LinkedBlockingQueue<>();
        BlockingQueue<WatchedEvent> tree = new LinkedBlockingQueue<>();
        BlockingQueue<WatchedEvent> oneShot = new LinkedBlockingQueue<>();
        ZooKeeper zk = new ZooKeeper(args[0], 30000, e -> {
            if (e.getType() == Watcher.Event.EventType.None) {
                states.add(e);
            }
        });
        await(states, Watcher.Event.KeeperState.SyncConnected);
        // Connection state changes reach every watch too; only node events count here.
        zk.addWatch("/w", e -> {
            if (e.getType() != Watcher.Event.EventType.None) {
                tree.add(e);
            }
        }, AddWatchMode.PERSISTENT_RECURSIVE);
        zk.getData("/w/one", e -> {
            if (e.getType() != Watcher.Event.EventType.None) {
                oneShot.add(e);
            }
        }, null);
        say("READY");
        for (int i = 0; i < 10; i++) {
            if (tree.poll(20, TimeUnit.SECONDS) == null) {
                throw new IllegalStateException("a live event never came");
            }
        }
        // A request after the events: its reply's zxid is what the client reports as seen
        // when it reconnects (this client does not count notification zxids).
        zk.exists("/w", false);
        say("LIVE-OK");
        await(states, Watcher.Event.KeeperState.Disconnected);
        say("DISCONNECTED");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        if (!"GO".equals(in.readLine())) {
            throw new IllegalStateException("expected GO");
        }
        await(states, Watcher.Event.KeeperState.SyncConnected);
        WatchedEvent e;
        while ((e = tree.poll(3, TimeUnit.SECONDS)) != null) {
            say("E " + e.getType() + " " + e.getPath());
        }
        WatchedEvent fired = oneShot.poll(1, TimeUnit.SECONDS);
        say("ONESHOT " + (fired == null ? "none" : fired.getType().toString()));
        say("DONE");
        zk.close();
    }

    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static void await(BlockingQueue<WatchedEvent> states, Watcher.Event.KeeperState want)
            throws InterruptedException {
        while (true) {
            WatchedEvent e = states.poll(60, TimeUnit.SECONDS);
            if (e == null) {
                throw new IllegalStateException("never " + want);
            }
            if (e.getState() == want) {
                return;
            }
        }
    }
}
