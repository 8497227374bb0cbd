package io.flover.cli;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Memory sizes on the command line: a byte count with an optional binary suffix, e.g. {@code 512m} or {@code 2g}. */
final class ByteSize {
    private static final Pattern SIZE = Pattern.compile("(\\d{1,18})([kmg]?)");

    private ByteSize() {
    }

    /** Bytes of {@code value}; errors name {@code flag}. */
    static long parse(String flag, String value) {
        Matcher m = SIZE.matcher(value.trim().toLowerCase(Locale.ROOT));
        if (m.matches()) {
            int shift = switch (m.group(2)) {
                case "k" -> 10;
                case "m" -> 20;
                case "g" -> 30;
                default -> 0;
            };
            long n = Long.parseLong(m.group(1));
            if (n > 0 && n <= Long.MAX_VALUE >> shift) {
                return n << shift;
            }
        }
        throw new IllegalArgumentException(flag + " must be a positive size such as 512m or 2g (k, m, g: KiB, MiB, GiB), got '"
                + value + "'");
    }
}
