import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Base64;
import java.util.Comparator;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;

/**
 * Apache Curator's CuratorCache (a persistent recursive watch on /w, Debian's jars) through
 * a cut connection, driven by tests/tests/watch_catchup.rs over stdin/stdout: READY once
 * the cache is initialized, LIVE-OK once it holds /w/live-9, DISCONNECTED when the
 * connection is suspended, then (after GO) RECONNECTED, and once no cache event has come
 * for 3 s, "EVENTS n" (listener calls since the disconnect), one "N path base64 version"
 * line per cached node, and DONE.
 */
public class CacheCheck {
    public static void main(String[] args) throws Exception {
        BlockingQueue<ConnectionState> states = new LinkedBlockingQueue<>();
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(args[0])
                .sessionTimeoutMs(30000)
                .connectionTimeoutMs(15000)
                .retryPolicy(new RetryNTimes(1000, 100))
                .build();
        client.getConnectionStateListenable().addListener((c, s) -> states.add(s));
        client.start();
        AtomicLong events = new AtomicLong();
        BlockingQueue<Boolean> initialized = new LinkedBlockingQueue<>();
        CuratorCache cache = CuratorCache.build(client, "/w");
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forAll((type, oldData, data) -> events.incrementAndGet())
                .forInitialized(() -> initialized.add(true))
                .build());
        cache.start();
        if (initialized.poll(60, TimeUnit.SECONDS) == null) {
            throw new IllegalStateException("the cache never initialized");
        }
        say("READY");
        long deadline = System.currentTimeMillis() + 30000;
        while (!cache.get("/w/live-9").isPresent()) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("the live changes never reached the cache");
            }
            Thread.sleep(20);
        }
        say("LIVE-OK");
        await(states, ConnectionState.SUSPENDED);
        long before = events.get();
        say("DISCONNECTED");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        if (!"GO".equals(in.readLine())) {
            throw new IllegalStateException("expected GO");
        }
        await(states, ConnectionState.RECONNECTED);
        say("RECONNECTED");
        long last = -1;
        while (events.get() != last) {
            last = events.get();
            Thread.sleep(3000);
        }
        say("EVENTS " + (events.get() - before));
        cache.stream()
                .sorted(Comparator.comparing(ChildData::getPath))
                .forEach(d -> say("N " + d.getPath() + " "
                        + Base64.getEncoder().encodeToString(d.getData() == null ? new byte[0] : d.getData())
                        + " " + d.getStat().getVersion()));
        say("DONE");
        cache.close();
        client.close();
    }

    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static void await(BlockingQueue<ConnectionState> states, ConnectionState want)
            throws InterruptedException {
        while (true) {
            ConnectionState s = states.poll(60, TimeUnit.SECONDS);
            if (s == null) {
                throw new IllegalStateException("never " + want);
            }
            if (s == want) {
                return;
            }
        }
    }
}
