package io.flover.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.util.Arrays;
import java.util.DoubleSummaryStatistics;
import java.util.List;
import java.util.function.Function;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

/**
 * The picture of a {@code bench serve} run, 800x500 PNG: the latency distribution (TTFT and end-to-end CDFs on a
 * log axis, since they differ by orders of magnitude) beside output tokens/s and the mean number of requests in
 * flight over time.
 */
final class BenchPlot {
    private static final int WIDTH = 400;
    private static final int HEIGHT = 500;
    private static final int BINS = 50;

    private BenchPlot() {
    }

    /** Needs at least one completed request. */
    static void write(Path file, List<LoadGenerator.Trace> traces) throws IOException {
        List<LoadGenerator.Trace> done = traces.stream().filter(t -> t.completed() && t.deliveries > 0).toList();
        double[] ttft = done.stream().mapToDouble(t -> (t.deliveryNanos[0] - t.sentNanos) / 1e6).toArray();
        double[] e2e = done.stream().mapToDouble(t -> (t.doneNanos - t.sentNanos) / 1e6).toArray();
        XYChart latency = chart("Latency CDF", "ms (log scale)", "fraction of requests");
        cdf(latency, "TTFT", ttft);
        cdf(latency, "end-to-end", e2e);
        latency.getStyler().setXAxisLogarithmic(true).setXAxisLogarithmicDecadeOnly(false)
                .setXAxisTickLabelsFormattingFunction(logLabels(ttft, e2e))
                .setYAxisMin(0.0).setYAxisMax(1.0).setYAxisDecimalPattern("0.0").setYAxisTickMarkSpacingHint(60)
                .setLegendPosition(Styler.LegendPosition.InsideNW);

        long end = traces.stream().mapToLong(t -> t.doneNanos).max().orElse(0);
        double bin = Math.max(end / 1e9 / BINS, 1e-3);
        double[] time = new double[BINS];
        double[] tokensPerSecond = new double[BINS];
        double[] inFlight = new double[BINS];
        for (int b = 0; b < BINS; b++) {
            time[b] = (b + 0.5) * bin;
        }
        for (LoadGenerator.Trace t : traces) {
            for (int i = 0; i < t.deliveries; i++) {
                int b = (int) Math.min(BINS - 1, t.deliveryNanos[i] / 1e9 / bin);
                tokensPerSecond[b] += t.deliveryTokens[i] / bin;
            }
            // Averaged over each bin, so requests shorter than a bin still count.
            double from = t.sentNanos / 1e9;
            double to = t.doneNanos / 1e9;
            for (int b = (int) Math.min(BINS - 1, from / bin); b < BINS && b * bin < to; b++) {
                inFlight[b] += (Math.min(to, (b + 1) * bin) - Math.max(from, b * bin)) / bin;
            }
        }
        XYChart throughput = chart("Throughput and load", "seconds since start", "output tokens/s");
        throughput.getStyler().setYAxisMin(0.0).setXAxisDecimalPattern("0.0#")
                .setLegendPosition(Styler.LegendPosition.OutsideS);
        throughput.getStyler().putYAxisGroupDecimalPatternMap(0, "#,##0");
        throughput.getStyler().putYAxisGroupDecimalPatternMap(1, "#,##0.##");
        throughput.addSeries("output tokens/s", time, tokensPerSecond);
        throughput.addSeries("requests in flight (mean)", time, inFlight).setYAxisGroup(1);
        throughput.setYAxisGroupTitle(1, "requests in flight");
        throughput.getStyler().setYAxisGroupPosition(1, Styler.YAxisPosition.Right);
        // At least 0 to 1: XChart leaves a right axis of a smaller range unlabelled.
        throughput.getStyler().setYAxisMin(1, 0.0).setYAxisMax(1, Math.max(1, Arrays.stream(inFlight).max().orElse(0)));
        try (OutputStream out = Files.newOutputStream(file)) {
            BitmapEncoder.saveBitmap(List.of(latency, throughput), 1, 2, out, BitmapEncoder.BitmapFormat.PNG);
        }
    }

    private static XYChart chart(String title, String x, String y) {
        XYChart c = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(x).yAxisTitle(y).build();
        c.getStyler().setMarkerSize(0).setChartTitleFont(c.getStyler().getChartTitleFont().deriveFont(13f));
        return c;
    }

    /**
     * Labels powers of ten, and 2 and 5 times them where the axis spans at most two decades: a log axis labelled
     * at every tick is unreadable.
     */
    private static Function<Double, String> logLabels(double[]... values) {
        DoubleSummaryStatistics all = Arrays.stream(values).flatMapToDouble(Arrays::stream).summaryStatistics();
        boolean narrow = Math.log10(all.getMax() / all.getMin()) <= 2;
        DecimalFormat format = new DecimalFormat("#,##0.###");
        return v -> {
            long lead = Math.round(v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)) * 1e6);
            return lead == 1_000_000 || narrow && (lead == 2_000_000 || lead == 5_000_000) ? format.format(v) : "";
        };
    }

    /** The empirical CDF as a line through (value, fraction of values at most it). */
    private static void cdf(XYChart chart, String name, double[] values) {
        if (values.length == 0) {
            return;
        }
        double[] x = values.clone();
        Arrays.sort(x);
        double[] y = new double[x.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = (i + 1) / (double) y.length;
        }
        chart.addSeries(name, x, y);
    }
}
