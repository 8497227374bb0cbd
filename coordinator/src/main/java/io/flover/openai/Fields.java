package io.flover.openai;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * A JSON object of a request, read field by field: a field of the wrong type or range is an error naming it (as
 * {@code param}), and so is any field left unread, so nothing a client sends is silently ignored. A null field is
 * an absent one, as OpenAI's API treats it.
 */
final class Fields {
    private final JsonNode node;
    private final String path;
    private final Set<String> read = new HashSet<>();

    /** {@code path} is how errors name this object ("" for the request body itself). */
    Fields(JsonNode node, String path) {
        if (node == null || !node.isObject()) {
            throw ApiError.invalid(path.isEmpty() ? null : path, (path.isEmpty() ? "the request body" : path)
                    + " must be a JSON object");
        }
        this.node = node;
        this.path = path;
    }

    String param(String name) {
        return path.isEmpty() ? name : path + "." + name;
    }

    /** The field, or null when absent or null. */
    JsonNode get(String name) {
        read.add(name);
        JsonNode v = node.get(name);
        return v == null || v.isNull() ? null : v;
    }

    boolean has(String name) {
        return get(name) != null;
    }

    String string(String name) {
        JsonNode v = get(name);
        if (v != null && !v.isTextual()) {
            throw ApiError.invalid(param(name), param(name) + " must be a string");
        }
        return v == null ? null : v.textValue();
    }

    boolean bool(String name, boolean absent) {
        JsonNode v = get(name);
        if (v != null && !v.isBoolean()) {
            throw ApiError.invalid(param(name), param(name) + " must be a boolean");
        }
        return v == null ? absent : v.booleanValue();
    }

    /** An integer in [min, max]. */
    long integer(String name, long absent, long min, long max) {
        JsonNode v = get(name);
        if (v == null) {
            return absent;
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < min || v.longValue() > max) {
            throw ApiError.invalid(param(name), param(name) + " must be an integer in [" + min + ", " + max + "], got " + v);
        }
        return v.longValue();
    }

    /** A number in [min, max]. */
    double number(String name, double absent, double min, double max) {
        JsonNode v = get(name);
        if (v == null) {
            return absent;
        }
        if (!v.isNumber() || !(v.doubleValue() >= min && v.doubleValue() <= max)) {
            throw ApiError.invalid(param(name), param(name) + " must be a number in [" + min + ", " + max + "], got " + v);
        }
        return v.doubleValue();
    }

    /** A string or a list of strings (as {@code stop} is), as a list. */
    List<String> strings(String name) {
        JsonNode v = get(name);
        List<String> out = new ArrayList<>();
        if (v == null) {
            return out;
        }
        if (v.isTextual()) {
            out.add(v.textValue());
            return out;
        }
        if (v.isArray()) {
            for (JsonNode s : v) {
                if (!s.isTextual()) {
                    throw ApiError.invalid(param(name), param(name) + " must be a string or a list of strings");
                }
                out.add(s.textValue());
            }
            return out;
        }
        throw ApiError.invalid(param(name), param(name) + " must be a string or a list of strings");
    }

    /** A list of integers (token ids), each as given. */
    long[] integers(String name) {
        JsonNode v = get(name);
        if (v == null) {
            return new long[0];
        }
        return integers(v, param(name));
    }

    static long[] integers(JsonNode v, String param) {
        if (!v.isArray()) {
            throw ApiError.invalid(param, param + " must be a list of integers");
        }
        long[] out = new long[v.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode e = v.get(i);
            if (!e.isIntegralNumber() || !e.canConvertToLong()) {
                throw ApiError.invalid(param, param + " must be a list of integers");
            }
            out[i] = e.longValue();
        }
        return out;
    }

    /** Fields this server does not implement: each, when set, is refused by name. */
    void refuse(String... names) {
        for (String name : names) {
            if (has(name)) {
                throw ApiError.unsupported(param(name));
            }
        }
    }

    /** Fields that change nothing here, such as {@code user}. */
    void ignore(String... names) {
        read.addAll(List.of(names));
    }

    /** Refuses any field not read so far. */
    void rejectUnknown() {
        for (Iterator<String> names = node.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!read.contains(name)) {
                throw ApiError.invalid(param(name), "unrecognized request argument: " + param(name));
            }
        }
    }
}
