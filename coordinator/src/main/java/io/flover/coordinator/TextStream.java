package io.flover.coordinator;

import io.flover.model.tokenizer.StreamDecoder;
import java.util.List;

/**
 * Turns a request's generated ids into text deltas and watches for stop strings. Text that could be the start
 * of a stop string is held back until it is known not to be one, so a client never sees a stop string or part
 * of one; when a stop string appears the text ends just before it.
 */
public final class TextStream {
    private final StreamDecoder decoder;
    private final List<String> stopStrings;
    private final StringBuilder pending = new StringBuilder();
    private boolean stopped;

    public TextStream(StreamDecoder decoder, List<String> stopStrings) {
        this.decoder = decoder;
        this.stopStrings = List.copyOf(stopStrings);
    }

    /** Adds a generated id; returns the text that can be released now (possibly empty). */
    public String push(int id) {
        if (stopped) {
            return "";
        }
        pending.append(decoder.push(id));
        int stopAt = firstStop();
        if (stopAt >= 0) {
            stopped = true;
            String out = pending.substring(0, stopAt);
            pending.setLength(0);
            return out;
        }
        int keep = heldBack();
        String out = pending.substring(0, pending.length() - keep);
        pending.delete(0, pending.length() - keep);
        return out;
    }

    /** Whether a stop string has been seen. */
    public boolean stopped() {
        return stopped;
    }

    /** Releases what is left at the end of generation. */
    public String finish() {
        if (stopped) {
            return "";
        }
        pending.append(decoder.flush());
        int stopAt = firstStop();
        if (stopAt >= 0) {
            stopped = true;
            pending.setLength(stopAt);
        }
        String out = pending.toString();
        pending.setLength(0);
        return out;
    }

    private int firstStop() {
        int best = -1;
        for (String s : stopStrings) {
            int i = pending.indexOf(s);
            if (i >= 0 && (best < 0 || i < best)) {
                best = i;
            }
        }
        return best;
    }

    /** Length of the longest suffix of the pending text that is a proper prefix of some stop string. */
    private int heldBack() {
        String text = pending.toString();
        int keep = 0;
        for (String s : stopStrings) {
            for (int len = Math.min(s.length() - 1, text.length()); len > keep; len--) {
                if (text.regionMatches(text.length() - len, s, 0, len)) {
                    keep = len;
                    break;
                }
            }
        }
        return keep;
    }
}
