package io.flover.collectives;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;

/**
 * Times all-reduces on this machine, each rank a thread of this process: over a {@link LocalGroup}, and over TCP
 * on loopback with a {@link TcpTransport} per rank (real sockets, as between processes). Each size is compared with
 * a plain copy of the same bytes, the yardstick on a machine whose absolute speed varies from run to run. Silent,
 * for callers that print the numbers.
 */
public final class AllReduceBenchmark {
    private static final Duration TIMEOUT = Duration.ofMinutes(1);
    private static final double WARM_UP_SECONDS = 1.0;

    public enum Transport { LOCAL, TCP }

    /**
     * One message size on one group. {@code micros} is the mean time of one all-reduce, {@code algGBps} the message
     * bytes over that time, and {@code busGBps} that times {@code 2 (n - 1) / n}: the share of the message a rank
     * must send and receive in a ring all-reduce, which makes the figure comparable across rank counts and with a
     * link's (here: a memory copy's) bandwidth. {@code memcpyGBps} is one thread copying the message bytes.
     */
    public record Result(Transport transport, int ranks, long bytes, long iterations, double micros, double algGBps,
                         double busGBps, double memcpyGBps) {
    }

    private AllReduceBenchmark() {
    }

    /**
     * Measures every size on a group of each rank count over each transport, each size for about
     * {@code secondsPerSize} after a warm-up of the group; {@code onResult} sees each result as it is measured.
     */
    public static List<Result> run(List<Transport> transports, List<Integer> rankCounts, List<Long> sizes,
                                   double secondsPerSize, Consumer<Result> onResult) throws Exception {
        Map<Long, Double> memcpy = new HashMap<>();
        List<Result> results = new ArrayList<>();
        int maxFloats = (int) (sizes.stream().mapToLong(Long::longValue).max().orElse(0) / Float.BYTES);
        for (Transport transport : transports) {
            for (int ranks : rankCounts) {
                try (Group group = new Group(transport, ranks, maxFloats)) {
                    group.warmUp(sizes);
                    for (long bytes : sizes) {
                        int floats = (int) (bytes / Float.BYTES);
                        long iterations = group.calibrate(floats, secondsPerSize);
                        double micros = group.time(floats, iterations) / 1e3 / iterations;
                        double algGBps = bytes / micros / 1e3;
                        double copy = memcpy.computeIfAbsent(bytes, b -> memcpyGBps(floats, secondsPerSize / 2));
                        Result r = new Result(transport, ranks, bytes, iterations, micros, algGBps,
                                algGBps * 2 * (ranks - 1) / ranks, copy);
                        results.add(r);
                        onResult.accept(r);
                    }
                }
            }
        }
        return results;
    }

    /** Bytes per second, in GB, of {@link System#arraycopy} copying {@code floats} floats over and over. */
    static double memcpyGBps(int floats, double seconds) {
        float[] from = new float[floats];
        float[] to = new float[floats];
        long copies = 0;
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        long now;
        do {
            for (int i = 0; i < 16; i++) {
                System.arraycopy(from, 0, to, 0, floats);
            }
            copies += 16;
            now = System.nanoTime();
        } while (now < end);
        return (double) copies * floats * Float.BYTES / (now - start);
    }

    /** A group of ranks, one thread each, with a message buffer per rank. */
    private static final class Group implements AutoCloseable {
        private final List<Communicator> ranks;
        private final List<TcpTransport> transports = new ArrayList<>();
        private final ExecutorService threads;
        private final float[][] data;

        Group(Transport transport, int size, int maxFloats) throws Exception {
            threads = Executors.newFixedThreadPool(size, Thread.ofPlatform().daemon().factory());
            data = new float[size][maxFloats];
            ranks = transport == Transport.LOCAL ? LocalGroup.create(size, TIMEOUT) : joinOverLoopback(size);
        }

        private List<Communicator> joinOverLoopback(int size) throws IOException, InterruptedException,
                ExecutionException {
            for (int r = 0; r < size; r++) {
                transports.add(TcpTransport.listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)));
            }
            List<InetSocketAddress> peers = transports.stream().map(TcpTransport::address).toList();
            List<Future<Communicator>> joins = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                int rank = r;
                joins.add(threads.submit(() -> transports.get(rank).join("bench", rank, peers, TIMEOUT)));
            }
            List<Communicator> joined = new ArrayList<>();
            for (Future<Communicator> j : joins) {
                joined.add(j.get());
            }
            return joined;
        }

        /** Compiles the paths of every size before any is timed. */
        void warmUp(List<Long> sizes) throws Exception {
            long end = System.nanoTime() + (long) (WARM_UP_SECONDS * 1e9);
            do {
                for (long bytes : sizes) {
                    time((int) (bytes / Float.BYTES), bytes <= (1 << 20) ? 20 : 1);
                }
            } while (System.nanoTime() < end);
        }

        /** Iterations that take about {@code seconds}, from doubling runs that take a tenth of it. */
        long calibrate(int floats, double seconds) throws Exception {
            long iterations = 1;
            long nanos;
            while ((nanos = time(floats, iterations)) < seconds * 1e8 && iterations < 1L << 40) {
                iterations *= 2;
            }
            return Math.max(1, (long) (iterations * seconds * 1e9 / Math.max(1, nanos)));
        }

        /** Nanoseconds rank 0 takes for {@code iterations} all-reduces, timed from a barrier that all have passed. */
        long time(int floats, long iterations) throws Exception {
            List<Future<Long>> runs = new ArrayList<>();
            for (Communicator c : ranks) {
                MemorySegment d = MemorySegment.ofArray(data[c.rank()]).asSlice(0, (long) floats * Float.BYTES);
                runs.add(threads.submit(() -> {
                    c.barrier();
                    long start = System.nanoTime();
                    for (long i = 0; i < iterations; i++) {
                        c.allReduceSum(d);
                    }
                    return System.nanoTime() - start;
                }));
            }
            for (Future<Long> run : runs) {
                run.get();
            }
            return runs.getFirst().get();
        }

        @Override
        public void close() {
            for (Communicator c : ranks) {
                c.close();
            }
            for (TcpTransport t : transports) {
                t.close();
            }
            threads.shutdownNow();
        }
    }
}
