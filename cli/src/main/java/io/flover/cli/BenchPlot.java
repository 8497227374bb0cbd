package io.flover.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.util.Arrays;
import java.util.DoubleSummaryStatistics;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.Styler;

/**
 * The pictures of the benchmarks. Of a {@code bench serve} run, 800x500 PNG: the latency distribution (TTFT and
 * end-to-end CDFs on a log axis, since they differ by orders of magnitude) beside output tokens/s and the mean
 * number of requests in flight over time. For {@code bench flover}, small panels of bars and lines that it lays
 * side by side.
 */
final class BenchPlot {
    private static final int WIDTH = 400;
    private static final int HEIGHT = 500;
    private static final int BINS = 50;
    /** Of a panel of {@code bench flover}'s pictures, small enough for a page of docs. */
    private static final int SMALL_HEIGHT = 300;

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

        Timeline timeline = Timeline.of(traces, Timeline.end(traces) / BINS);
        XYChart throughput = chart("Throughput and load", "seconds since start", "output tokens/s");
        throughput.getStyler().setYAxisMin(0.0).setXAxisDecimalPattern("0.0#")
                .setLegendPosition(Styler.LegendPosition.OutsideS);
        throughput.getStyler().putYAxisGroupDecimalPatternMap(0, "#,##0");
        throughput.getStyler().putYAxisGroupDecimalPatternMap(1, "#,##0.##");
        throughput.addSeries("output tokens/s", timeline.seconds(), timeline.tokensPerSecond());
        throughput.addSeries("requests in flight (mean)", timeline.seconds(), timeline.inFlight()).setYAxisGroup(1);
        throughput.setYAxisGroupTitle(1, "requests in flight");
        throughput.getStyler().setYAxisGroupPosition(1, Styler.YAxisPosition.Right);
        // At least 0 to 1: XChart leaves a right axis of a smaller range unlabelled.
        throughput.getStyler().setYAxisMin(1, 0.0)
                .setYAxisMax(1, Math.max(1, Arrays.stream(timeline.inFlight()).max().orElse(0)));
        save(file, List.of(latency, throughput));
    }

    /**
     * A run over time in bins of {@code binSeconds} from its start to its last completion: output tokens/s, and the
     * mean number of requests in flight (averaged over each bin, so requests shorter than a bin still count).
     */
    record Timeline(double[] seconds, double[] tokensPerSecond, double[] inFlight) {
        static Timeline of(List<LoadGenerator.Trace> traces, double binSeconds) {
            double bin = Math.max(binSeconds, 1e-3);
            int bins = Math.max(1, (int) Math.ceil(end(traces) / bin));
            double[] time = new double[bins];
            double[] tokensPerSecond = new double[bins];
            double[] inFlight = new double[bins];
            for (int b = 0; b < bins; b++) {
                time[b] = (b + 0.5) * bin;
            }
            for (LoadGenerator.Trace t : traces) {
                for (int i = 0; i < t.deliveries; i++) {
                    int b = (int) Math.min(bins - 1, t.deliveryNanos[i] / 1e9 / bin);
                    tokensPerSecond[b] += t.deliveryTokens[i] / bin;
                }
                double from = t.sentNanos / 1e9;
                double to = t.doneNanos / 1e9;
                for (int b = (int) Math.min(bins - 1, from / bin); b < bins && b * bin < to; b++) {
                    inFlight[b] += (Math.min(to, (b + 1) * bin) - Math.max(from, b * bin)) / bin;
                }
            }
            return new Timeline(time, tokensPerSecond, inFlight);
        }

        /** Seconds from the run's start to its last completion. */
        static double end(List<LoadGenerator.Trace> traces) {
            return traces.stream().mapToLong(t -> t.doneNanos).max().orElse(0) / 1e9;
        }
    }

    /**
     * One value per category and series: grouped bars, or lines through the categories (for a sweep whose values
     * are spaced evenly on a log scale, such as arrival gaps).
     */
    static CategoryChart categories(String title, String x, String y, List<String> categories,
                                    Map<String, double[]> series, boolean lines) {
        CategoryChart c = new CategoryChartBuilder().width(WIDTH).height(SMALL_HEIGHT).title(title).xAxisTitle(x)
                .yAxisTitle(y).build();
        // Lines join each series' points at the category's centre; bars stand side by side.
        c.getStyler().setDefaultSeriesRenderStyle(lines ? CategorySeries.CategorySeriesRenderStyle.Line
                        : CategorySeries.CategorySeriesRenderStyle.Bar)
                .setOverlapped(lines)
                .setYAxisMin(0.0)
                .setLegendPosition(Styler.LegendPosition.OutsideS).setLegendLayout(Styler.LegendLayout.Horizontal)
                .setChartTitleFont(c.getStyler().getChartTitleFont().deriveFont(13f));
        series.forEach((name, values) -> c.addSeries(name, categories, Arrays.stream(values).boxed().toList()));
        return c;
    }

    /** A small line chart of positive values: {@code series} maps each line's name to its x and y values. */
    static XYChart lines(String title, String x, String y, Map<String, double[][]> series) {
        XYChart c = chart(title, x, y, WIDTH, SMALL_HEIGHT);
        c.getStyler().setXAxisMin(0.0).setYAxisMin(0.0).setXAxisDecimalPattern("#,##0.#")
                .setLegendPosition(Styler.LegendPosition.OutsideS)
                .setLegendLayout(Styler.LegendLayout.Horizontal);
        series.forEach((name, xy) -> c.addSeries(name, xy[0], xy[1]));
        return c;
    }

    /** The charts side by side in one PNG. */
    static void save(Path file, List<? extends Chart<?, ?>> charts) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            BitmapEncoder.saveBitmap(charts, 1, charts.size(), out, BitmapEncoder.BitmapFormat.PNG);
        }
    }

    private static XYChart chart(String title, String x, String y) {
        return chart(title, x, y, WIDTH, HEIGHT);
    }

    private static XYChart chart(String title, String x, String y, int width, int height) {
        XYChart c = new XYChartBuilder().width(width).height(height).title(title).xAxisTitle(x).yAxisTitle(y).build();
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
