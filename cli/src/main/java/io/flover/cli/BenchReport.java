package io.flover.cli;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/**
 * What a {@code bench serve} run measured, from the client's traces: counts, throughput and the latency
 * distributions. Latencies are in milliseconds; TTFT, TPOT, ITL and end-to-end count from when the call was sent,
 * and the send lag (how late the timer started a call) is the generator's own delay, apart from the server's.
 *
 * @param failures failed requests by gRPC status, or FINISH_REASON_ERROR for a request the server failed
 * @param cpuSeconds the CPU time of this process during the run: what generating the load cost
 * @param longestStallMillis the longest time in which some stream was waiting for its next token and no stream got
 *     one: the whole server standing still, not one request queued behind others
 */
record BenchReport(int requests, int completed, Map<String, Integer> failures, double durationSeconds,
                   long promptTokens, long outputTokens, Summary ttft, Summary tpot, Summary itl, Summary e2e,
                   Summary sendLag, double cpuSeconds, double longestStallMillis) {

    /** Mean and percentiles of one latency; null where no request had one (e.g. TPOT of one-token outputs). */
    record Summary(double mean, double p50, double p90, double p99) {
        static Summary of(double[] values) {
            if (values.length == 0) {
                return null;
            }
            double[] sorted = values.clone();
            Arrays.sort(sorted);
            return new Summary(Arrays.stream(sorted).sum() / sorted.length, percentile(sorted, 50),
                    percentile(sorted, 90), percentile(sorted, 99));
        }

        Map<String, Double> json() {
            Map<String, Double> m = new LinkedHashMap<>();
            m.put("mean", mean);
            m.put("p50", p50);
            m.put("p90", p90);
            m.put("p99", p99);
            return m;
        }
    }

    /** The p-th percentile of sorted values, interpolating linearly between closest ranks (as numpy's default). */
    static double percentile(double[] sorted, double p) {
        double rank = p / 100 * (sorted.length - 1);
        int lo = (int) Math.floor(rank);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (rank - lo) * (sorted[hi] - sorted[lo]);
    }

    static BenchReport of(List<LoadGenerator.Trace> traces, double cpuSeconds) {
        List<LoadGenerator.Trace> done = traces.stream().filter(LoadGenerator.Trace::completed).toList();
        Map<String, Integer> failures = traces.stream().filter(t -> !t.completed())
                .collect(Collectors.toMap(t -> t.failure, t -> 1, Integer::sum, TreeMap::new));
        long end = traces.stream().mapToLong(t -> t.doneNanos).max().orElse(0);
        double[] ttft = done.stream().filter(t -> t.deliveries > 0)
                .mapToDouble(t -> millis(t.deliveryNanos[0] - t.sentNanos)).toArray();
        double[] tpot = done.stream().filter(t -> t.tokens > 1)
                .mapToDouble(t -> millis(t.doneNanos - t.deliveryNanos[0]) / (t.tokens - 1)).toArray();
        double[] itl = done.stream().flatMapToDouble(t -> IntStream.range(1, t.deliveries)
                .mapToDouble(i -> millis(t.deliveryNanos[i] - t.deliveryNanos[i - 1]))).toArray();
        double[] e2e = done.stream().mapToDouble(t -> millis(t.doneNanos - t.sentNanos)).toArray();
        double[] lag = traces.stream().mapToDouble(t -> millis(t.sentNanos - t.request.atNanos())).toArray();
        return new BenchReport(traces.size(), done.size(), failures, end / 1e9,
                done.stream().mapToLong(t -> t.request.prompt().length).sum(),
                done.stream().mapToLong(t -> t.tokens).sum(),
                Summary.of(ttft), Summary.of(tpot), Summary.of(itl), Summary.of(e2e), Summary.of(lag), cpuSeconds,
                millis(longestStall(traces)));
    }

    /** Of every gap between two consecutive deliveries (to any stream), the longest that a stream spans. */
    static long longestStall(List<LoadGenerator.Trace> traces) {
        long[] times = traces.stream().flatMapToLong(t -> Arrays.stream(t.deliveryNanos, 0, t.deliveries))
                .sorted().toArray();
        List<LoadGenerator.Trace> streams = traces.stream().filter(t -> t.deliveries > 1).toList();
        long longest = 0;
        for (int i = 1; i < times.length; i++) {
            long from = times[i - 1];
            long to = times[i];
            if (to - from > longest && streams.stream().anyMatch(
                    t -> t.deliveryNanos[0] <= from && t.deliveryNanos[t.deliveries - 1] >= to)) {
                longest = to - from;
            }
        }
        return longest;
    }

    /** Each request as the client saw it, in workload order; latencies are null where it has none. */
    static List<Map<String, Object>> perRequest(List<LoadGenerator.Trace> traces) {
        return traces.stream().map(t -> {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("arrival_s", t.request.atNanos() / 1e9);
            m.put("sent_s", t.sentNanos / 1e9);
            m.put("prompt_tokens", t.request.prompt().length);
            m.put("max_tokens", t.request.maxTokens());
            m.put("output_tokens", t.tokens);
            m.put("ttft_ms", t.deliveries == 0 ? null : millis(t.deliveryNanos[0] - t.sentNanos));
            m.put("e2e_ms", millis(t.doneNanos - t.sentNanos));
            m.put("failure", t.failure);
            return m;
        }).toList();
    }

    private static double millis(long nanos) {
        return nanos / 1e6;
    }

    double requestsPerSecond() {
        return completed / durationSeconds;
    }

    double outputTokensPerSecond() {
        return outputTokens / durationSeconds;
    }

    /**
     * How much the requests overlapped: the mean number in flight (sent and not yet done) over the run, that is the
     * sum of the completed requests' end-to-end times over the duration (Little's law).
     */
    double meanInFlight() {
        return e2e == null ? 0 : e2e.mean() / 1000 * completed / durationSeconds;
    }

    void print(PrintWriter out) {
        out.printf("completed          %d of %d%n", completed, requests);
        out.printf("failed             %d%s%n", requests - completed, failures.isEmpty() ? "" : failures.entrySet()
                .stream().map(e -> e.getKey() + " " + e.getValue()).collect(Collectors.joining(", ", " (", ")")));
        out.printf("duration           %.2f s%n", durationSeconds);
        out.printf("requests/s         %.2f%n", requestsPerSecond());
        out.printf("output tokens/s    %.1f (%d output, %d prompt tokens)%n", outputTokensPerSecond(), outputTokens,
                promptTokens);
        out.printf("in flight          %.2f requests on average%n", meanInFlight());
        out.printf("generator CPU      %.2f s, %.1f us per output token%n", cpuSeconds, cpuMicrosPerToken());
        out.printf("longest stall      %.1f ms with streams waiting and no token to any%n", longestStallMillis);
        out.println();
        out.println("| ms | mean | p50 | p90 | p99 |");
        out.println("|---|---|---|---|---|");
        row(out, "TTFT", ttft);
        row(out, "TPOT", tpot);
        row(out, "ITL", itl);
        row(out, "end-to-end", e2e);
        row(out, "send lag", sendLag);
        out.flush();
    }

    private double cpuMicrosPerToken() {
        return outputTokens == 0 ? Double.NaN : cpuSeconds * 1e6 / outputTokens;
    }

    private static void row(PrintWriter out, String name, Summary s) {
        out.println(s == null ? "| " + name + " | - | - | - | - |"
                : String.format("| %s | %.3f | %.3f | %.3f | %.3f |", name, s.mean(), s.p50(), s.p90(), s.p99()));
    }

    Map<String, Object> json() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("requests", requests);
        m.put("completed", completed);
        m.put("failed", requests - completed);
        m.put("failures", failures);
        m.put("duration_s", durationSeconds);
        m.put("request_throughput_per_s", requestsPerSecond());
        m.put("output_tokens_per_s", outputTokensPerSecond());
        m.put("prompt_tokens", promptTokens);
        m.put("output_tokens", outputTokens);
        m.put("mean_in_flight", meanInFlight());
        m.put("ttft_ms", ttft == null ? null : ttft.json());
        m.put("tpot_ms", tpot == null ? null : tpot.json());
        m.put("itl_ms", itl == null ? null : itl.json());
        m.put("e2e_ms", e2e == null ? null : e2e.json());
        m.put("send_lag_ms", sendLag == null ? null : sendLag.json());
        m.put("longest_stall_ms", longestStallMillis);
        m.put("generator_cpu_s", cpuSeconds);
        m.put("generator_cpu_us_per_output_token", outputTokens == 0 ? null : cpuMicrosPerToken());
        return m;
    }
}
