// Apache Curator (Debian libcurator-*-java) against a server given as host:port:
// LeaderLatch, InterProcessMutex, CuratorCache (persistent recursive watches) and
// DistributedQueue. Prints "N passed, M failed" last and exits non-zero on failure.
// Compiled and run by tests/tests/curator.rs.

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;

public class CuratorCheck {
    interface Check { void run(CuratorFramework c) throws Exception; }

    static CuratorFramework client(String hosts) {
        CuratorFramework c = CuratorFrameworkFactory.newClient(hosts, 10000, 5000,
            new ExponentialBackoffRetry(100, 3));
        c.start();
        return c;
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        List<String> failures = new ArrayList<>();
        int passed = 0;
        Object[][] checks = {
            {"create2 and getData", (Check) c -> {
                c.create().creatingParentsIfNeeded().forPath("/cur/basic/a", "x".getBytes());
                check(new String(c.getData().forPath("/cur/basic/a")).equals("x"), "data");
                check(c.checkExists().forPath("/cur/basic/a").getVersion() == 0, "version");
            }},
            {"LeaderLatch", (Check) c -> {
                CuratorFramework c2 = client(hosts);
                LeaderLatch a = new LeaderLatch(c, "/cur/leader", "a");
                LeaderLatch b = new LeaderLatch(c2, "/cur/leader", "b");
                a.start(); b.start();
                check(a.await(10, TimeUnit.SECONDS) || b.await(10, TimeUnit.SECONDS), "a leader");
                check(a.hasLeadership() != b.hasLeadership(), "exactly one leader");
                LeaderLatch leader = a.hasLeadership() ? a : b;
                LeaderLatch other = leader == a ? b : a;
                leader.close();
                check(other.await(10, TimeUnit.SECONDS), "leadership moves");
                other.close();
                c2.close();
            }},
            {"InterProcessMutex", (Check) c -> {
                CuratorFramework c2 = client(hosts);
                InterProcessMutex m1 = new InterProcessMutex(c, "/cur/lock");
                InterProcessMutex m2 = new InterProcessMutex(c2, "/cur/lock");
                check(m1.acquire(5, TimeUnit.SECONDS), "first acquires");
                check(!m2.acquire(300, TimeUnit.MILLISECONDS), "second waits");
                m1.release();
                check(m2.acquire(5, TimeUnit.SECONDS), "second acquires after release");
                m2.release();
                c2.close();
            }},
            {"CuratorCache", (Check) c -> {
                c.create().creatingParentsIfNeeded().forPath("/cur/cache");
                BlockingQueue<String> events = new LinkedBlockingQueue<>();
                CuratorCache cache = CuratorCache.build(c, "/cur/cache");
                cache.listenable().addListener(CuratorCacheListener.builder()
                    .forCreates(n -> events.add("created " + n.getPath()))
                    .forChanges((o, n) -> events.add("changed " + n.getPath()))
                    .forDeletes(o -> events.add("deleted " + o.getPath()))
                    .build());
                cache.start();
                check("created /cur/cache".equals(events.poll(10, TimeUnit.SECONDS)), "initial");
                // One change at a time: the cache reports a change only for a node it has
                // loaded, so a set racing its first read of the node may be folded into it.
                List<String> seen = new ArrayList<>();
                c.create().creatingParentsIfNeeded().forPath("/cur/cache/x/y", "1".getBytes());
                awaitEvent(events, seen, "created /cur/cache/x/y");
                c.setData().forPath("/cur/cache/x/y", "2".getBytes());
                awaitEvent(events, seen, "changed /cur/cache/x/y");
                c.delete().forPath("/cur/cache/x/y");
                awaitEvent(events, seen, "deleted /cur/cache/x/y");
                check(seen.contains("created /cur/cache/x") && seen.contains("created /cur/cache/x/y")
                    && seen.contains("changed /cur/cache/x/y") && seen.contains("deleted /cur/cache/x/y"),
                    "events: " + seen);
                cache.close();
            }},
            {"DistributedQueue", (Check) c -> {
                BlockingQueue<String> got = new LinkedBlockingQueue<>();
                QueueConsumer<String> consumer = new QueueConsumer<String>() {
                    public void consumeMessage(String m) { got.add(m); }
                    public void stateChanged(CuratorFramework f, ConnectionState s) {}
                };
                QueueSerializer<String> ser = new QueueSerializer<String>() {
                    public byte[] serialize(String s) { return s.getBytes(); }
                    public String deserialize(byte[] b) { return new String(b); }
                };
                DistributedQueue<String> q = QueueBuilder.builder(c, consumer, ser, "/cur/queue").buildQueue();
                q.start();
                for (int i = 0; i < 5; i++) q.put("m" + i);
                List<String> out = new ArrayList<>();
                for (int i = 0; i < 5; i++) {
                    String m = got.poll(10, TimeUnit.SECONDS);
                    if (m == null) break;
                    out.add(m);
                }
                q.close();
                check(out.size() == 5 && out.get(0).equals("m0") && out.get(4).equals("m4"), "got " + out);
            }},
        };
        CuratorFramework c = client(hosts);
        check(c.blockUntilConnected(20, TimeUnit.SECONDS), "connected");
        for (Object[] entry : checks) {
            String name = (String) entry[0];
            try {
                ((Check) entry[1]).run(c);
                passed++;
                System.out.println("ok   " + name);
            } catch (Throwable t) {
                failures.add(name);
                System.out.println("FAIL " + name + ": " + t);
            }
        }
        c.close();
        System.out.println(passed + " passed, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    /** Collects events into `seen` until `want` arrives (or 10 s pass). */
    static void awaitEvent(BlockingQueue<String> events, List<String> seen, String want)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + 10_000;
        while (!seen.contains(want)) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return;
            String e = events.poll(left, TimeUnit.MILLISECONDS);
            if (e == null) return;
            seen.add(e);
        }
    }
}
