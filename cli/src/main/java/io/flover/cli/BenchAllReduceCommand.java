package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.flover.collectives.AllReduceBenchmark;
import io.flover.collectives.AllReduceBenchmark.Transport;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench-allreduce", mixinStandardHelpOptions = true,
        description = {"Measure all-reduce latency and bandwidth on this machine, over the in-process group and over "
                + "the TCP ring on loopback (a listener per rank: real sockets), against a plain memory copy of the "
                + "same bytes.",
                "Every rank is a thread of this process."})
final class BenchAllReduceCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--ranks", split = ",", defaultValue = "2,4",
            description = "group sizes (default: ${DEFAULT-VALUE})")
    List<Integer> ranks;

    @Option(names = "--transports", split = ",", defaultValue = "tcp,local",
            description = "tcp (loopback sockets) and/or local (shared memory) (default: ${DEFAULT-VALUE})")
    List<String> transports;

    @Option(names = "--min-size", defaultValue = "4k", description = "smallest message (default: ${DEFAULT-VALUE})")
    String minSize;

    @Option(names = "--max-size", defaultValue = "64m", description = "largest message (default: ${DEFAULT-VALUE})")
    String maxSize;

    @Option(names = "--factor", defaultValue = "4",
            description = "ratio of consecutive sizes (default: ${DEFAULT-VALUE})")
    int factor;

    @Option(names = "--seconds", defaultValue = "0.5", description = "time per size (default: ${DEFAULT-VALUE})")
    double seconds;

    @Option(names = "--json", description = "also write the results as JSON to this file")
    Path jsonOut;

    @Override
    public Integer call() throws Exception {
        List<Long> sizes = sizes();
        List<Transport> chosen = transports.stream().map(BenchAllReduceCommand::transport).toList();
        for (int n : ranks) {
            if (n < 2) {
                throw new IllegalArgumentException("--ranks: a group to reduce over needs 2 ranks or more, got " + n);
            }
        }
        if (!(seconds > 0)) {
            throw new IllegalArgumentException("--seconds must be positive");
        }
        int total = sizes.size() * ranks.size() * chosen.size();
        Progress progress = new Progress("bench-allreduce:");
        List<AllReduceBenchmark.Result> results = new ArrayList<>();
        AllReduceBenchmark.run(chosen, ranks, sizes, seconds, r -> {
            results.add(r);
            progress.update(String.format(Locale.ROOT, "%d of %d measured (%s, %d ranks, %s: %.1f us)", results.size(),
                    total, name(r.transport()), r.ranks(), bytes(r.bytes()), r.micros()));
        });
        progress.done("bench-allreduce: " + total + " measurements");

        PrintWriter out = spec.commandLine().getOut();
        out.println("| transport | ranks | size | latency (us) | algbw (GB/s) | busbw (GB/s) | memcpy (GB/s) "
                + "| busbw / memcpy |");
        out.println("|---|---|---|---|---|---|---|---|");
        List<Object> json = new ArrayList<>();
        for (AllReduceBenchmark.Result r : results) {
            out.printf(Locale.ROOT, "| %s | %d | %s | %.1f | %.2f | %.2f | %.1f | %.3f |%n", name(r.transport()),
                    r.ranks(), bytes(r.bytes()), r.micros(), r.algGBps(), r.busGBps(), r.memcpyGBps(),
                    r.busGBps() / r.memcpyGBps());
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("transport", name(r.transport()));
            row.put("ranks", r.ranks());
            row.put("bytes", r.bytes());
            row.put("iterations", r.iterations());
            row.put("latency_us", r.micros());
            row.put("alg_gb_per_s", r.algGBps());
            row.put("bus_gb_per_s", r.busGBps());
            row.put("memcpy_gb_per_s", r.memcpyGBps());
            json.add(row);
        }
        out.flush();
        if (jsonOut != null) {
            Map<String, Object> document = new LinkedHashMap<>();
            document.put("seconds_per_size", seconds);
            document.put("results", json);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(jsonOut.toFile(), document);
        }
        return 0;
    }

    /** Message sizes from --min-size to --max-size, each --factor times the last. */
    private List<Long> sizes() {
        long min = ByteSize.parse("--min-size", minSize);
        long max = ByteSize.parse("--max-size", maxSize);
        if (min % Float.BYTES != 0 || min > max || max > 1L << 30) {
            throw new IllegalArgumentException("sizes must be whole floats (multiples of 4 bytes), --min-size at most "
                    + "--max-size, and --max-size at most 1g");
        }
        if (factor < 2) {
            throw new IllegalArgumentException("--factor must be at least 2");
        }
        List<Long> sizes = new ArrayList<>();
        for (long s = min; s <= max; s *= factor) {
            sizes.add(s);
        }
        return sizes;
    }

    private static Transport transport(String name) {
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "tcp" -> Transport.TCP;
            case "local" -> Transport.LOCAL;
            default -> throw new IllegalArgumentException("--transports: '" + name + "' is not tcp or local");
        };
    }

    private static String name(Transport t) {
        return t.name().toLowerCase(Locale.ROOT);
    }

    private static String bytes(long b) {
        if (b >= 1 << 20 && b % (1 << 20) == 0) {
            return (b >> 20) + " MiB";
        }
        if (b >= 1 << 10 && b % (1 << 10) == 0) {
            return (b >> 10) + " KiB";
        }
        return b + " B";
    }
}
