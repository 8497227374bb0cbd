package io.flover.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A seeded serving workload: when each request arrives, its token-id prompt and how many tokens it asks for.
 * Arrival times, prompt lengths, output lengths and prompt ids come from separate streams split off one seed, so
 * runs at different rates send the same requests.
 */
record Workload(List<Request> requests) {
    /** One request, {@code atNanos} after the run starts. */
    record Request(long atNanos, int[] prompt, int maxTokens) {
    }

    /** How request lengths are drawn. */
    sealed interface Lengths {
        int draw(SplittableRandom rnd);

        /** The longest length it can draw, {@code Integer.MAX_VALUE} when unbounded. */
        int max();

        /** {@code N}, uniform {@code MIN:MAX}, or {@code lognormal:MEAN:SIGMA[:MAX]}; errors name {@code flag}. */
        static Lengths parse(String flag, String spec) {
            String[] p = spec.trim().split(":");
            try {
                if (p[0].equalsIgnoreCase("lognormal") && (p.length == 3 || p.length == 4)) {
                    double mean = Double.parseDouble(p[1]);
                    double sigma = Double.parseDouble(p[2]);
                    int cap = p.length == 4 ? Integer.parseInt(p[3]) : Integer.MAX_VALUE;
                    if (mean >= 1 && Double.isFinite(mean) && sigma >= 0 && Double.isFinite(sigma) && cap >= 1) {
                        return new LogNormal(mean, sigma, cap);
                    }
                } else if (p.length == 1 && Integer.parseInt(p[0]) >= 1) {
                    return new Fixed(Integer.parseInt(p[0]));
                } else if (p.length == 2) {
                    int lo = Integer.parseInt(p[0]);
                    int hi = Integer.parseInt(p[1]);
                    if (lo >= 1 && hi >= lo) {
                        return new Uniform(lo, hi);
                    }
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new IllegalArgumentException(flag + ": '" + spec + "' is not N, MIN:MAX with 1 <= MIN <= MAX, "
                    + "or lognormal:MEAN:SIGMA[:MAX] with MEAN >= 1, SIGMA >= 0");
        }
    }

    record Fixed(int n) implements Lengths {
        @Override
        public int draw(SplittableRandom rnd) {
            return n;
        }

        @Override
        public int max() {
            return n;
        }
    }

    record Uniform(int min, int max) implements Lengths {
        @Override
        public int draw(SplittableRandom rnd) {
            return rnd.nextInt(min, max + 1);
        }
    }

    /**
     * Log-normal with the given mean (in tokens; the underlying normal has mean {@code ln(mean) - sigma^2/2}),
     * rounded and clipped to {@code [1, cap]}: real prompt and answer lengths have this long right tail.
     */
    record LogNormal(double mean, double sigma, int cap) implements Lengths {
        @Override
        public int draw(SplittableRandom rnd) {
            double x = Math.exp(Math.log(mean) - sigma * sigma / 2 + sigma * rnd.nextGaussian());
            return (int) Math.max(1, Math.min(cap, Math.round(x)));
        }

        @Override
        public int max() {
            return cap;
        }
    }

    /**
     * When requests arrive: a Poisson process of {@code perSecond} (infinite: all at once) or a constant interval.
     */
    record Arrivals(double perSecond, boolean poisson) {
        static Arrivals poisson(double perSecond) {
            return new Arrivals(perSecond, true);
        }

        static Arrivals every(double millis) {
            return new Arrivals(1000 / millis, false);
        }

        double gapSeconds(SplittableRandom rnd) {
            if (Double.isInfinite(perSecond)) {
                return 0;
            }
            return poisson ? -Math.log(1 - rnd.nextDouble()) / perSecond : 1 / perSecond;
        }

        @Override
        public String toString() {
            if (Double.isInfinite(perSecond)) {
                return "all at once";
            }
            return poisson ? String.format("Poisson, %.4g requests/s", perSecond)
                    : String.format("every %.4g ms", 1000 / perSecond);
        }
    }

    /** {@code count} requests with prompt ids below {@code vocab}; the first arrives at time 0. */
    static Workload generate(int count, Arrivals arrivals, Lengths promptLengths, Lengths outputLengths, int vocab,
                             long seed) {
        SplittableRandom root = new SplittableRandom(seed);
        SplittableRandom times = root.split();
        SplittableRandom prompts = root.split();
        SplittableRandom outputs = root.split();
        SplittableRandom ids = root.split();
        List<Request> requests = new ArrayList<>(count);
        double t = 0;
        for (int i = 0; i < count; i++) {
            int[] prompt = new int[promptLengths.draw(prompts)];
            for (int j = 0; j < prompt.length; j++) {
                prompt[j] = ids.nextInt(vocab);
            }
            requests.add(new Request(Math.round(t * 1e9), prompt, outputLengths.draw(outputs)));
            t += arrivals.gapSeconds(times);
        }
        return new Workload(List.copyOf(requests));
    }
}
