package io.flover.cli;

/** A one-line progress display on stderr, rewritten in place on a terminal and printed sparsely otherwise. */
final class Progress {
    private final String label;
    private final boolean terminal = System.console() != null;
    private long lastPrint;

    Progress(String label) {
        this.label = label;
    }

    void update(String what) {
        long now = System.nanoTime();
        if (terminal) {
            System.err.print("\r\033[K" + label + " " + what);
        } else if (now - lastPrint > 2_000_000_000L) {
            System.err.println(label + " " + what);
            lastPrint = now;
        }
    }

    void done(String message) {
        System.err.println((terminal ? "\r\033[K" : "") + message);
    }
}
