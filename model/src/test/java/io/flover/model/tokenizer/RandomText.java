package io.flover.model.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Seeded random strings that exercise tokenizer splitting: many scripts, whitespace, digits, emoji and code. */
final class RandomText {

    private static final String[] WORDS = {
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer", "inference", "server",
        "Hello", "World", "GPU", "latency", "a", "I", "transformer", "attention", "is", "all", "you", "need",
        "HTTP", "JSON", "iPhone", "McDonald", "x", "OK", "camelCase", "snake_case", "kebab-case",
    };
    private static final String[] CONTRACTIONS = {
        "don't", "DON'T", "it's", "IT'S", "they're", "THEY'RE", "we've", "I'm", "I'M", "you'll", "YOU'LL",
        "she'd", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "O'Neil", "rock'n'roll", "'S", "'Ll", "''",
    };
    private static final String[] NUMBERS = {
        "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "2024-01-31", "-17",
        "1e-9", "0x1F", "١٢٣", "२०२४", "½", "Ⅻ", "²",
    };
    private static final String[] PUNCTUATION = {
        "!", "?", ".", "...", "?!", "---", "—", "–", "(", ")", "{}", "[]", "<>", "\"", "'", "`", "@#$%^&*",
        "«»", "“quoted”", "¿", "¡", "…", "::", "->", "=>", "!=", "//", "/*", "*/", "€", "£100", "§", "°C",
    };
    private static final String[] FOREIGN = {
        "café", "naïve", "résumé", "Zürich", "São Paulo", "ñandú", "Ærøskøbing", "façade", "Œuvre", "İstanbul",
        "Ελληνικά", "αβγ δέζ", "Привет, мир", "Съешь же ещё этих мягких французских булок",
        "你好，世界", "我们今天去哪儿？", "東京タワー", "ひらがなとカタカナ", "한국어 문장입니다",
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีครับ", "ქართული", "Հայերեն", "e\u0301", "A\u030A",
    };
    private static final String[] EMOJI = {
        "😀", "🙂", "🚀", "❤️", "👍", "👍🏽", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🇺🇸", "🇯🇵🇩🇪", "1️⃣", "☕", "🤖🤖🤖", "✅", "🧑🏿‍🚀",
    };
    private static final String[] WHITESPACE = {
        " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t ", "\u00A0", "\u3000", "\u2009",
        "\u200B", "\f", "\u000B", "        ",
    };
    private static final String[] CODE = {
        "public static void main(String[] args) {\n    System.out.println(\"hi\");\n}",
        "for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }",
        "def f(x: int) -> int:\n    return x ** 2  # square\n",
        "if __name__ == '__main__':\n\tmain()",
        "{\"name\": \"flover\", \"version\": 1, \"tags\": [\"llm\", \"java\"], \"ok\": true}",
        "SELECT id, name FROM users WHERE age >= 18;",
        "<div class=\"x\">&amp;</div>",
        "x = [1, 2, 3]\ny = {k: v for k, v in zip(x, x)}",
        "    return self.weight @ x + self.bias",
        "#include <stdio.h>\nint main(){printf(\"%d\\n\", 1<<4);}",
    };

    private final Random random;

    RandomText(long seed) {
        random = new Random(seed);
    }

    /** {@code count} strings, each joining a few random fragments. */
    List<String> strings(int count) {
        List<String> strings = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            strings.add(next());
        }
        return strings;
    }

    String next() {
        StringBuilder text = new StringBuilder();
        int fragments = 1 + random.nextInt(8);
        for (int i = 0; i < fragments; i++) {
            text.append(fragment());
            text.append(switch (random.nextInt(6)) {
                case 0, 1, 2 -> " ";
                case 3 -> pick(WHITESPACE);
                default -> "";
            });
        }
        return text.toString();
    }

    private String fragment() {
        return switch (random.nextInt(10)) {
            case 0 -> sentence();
            case 1 -> pick(CONTRACTIONS);
            case 2 -> pick(NUMBERS) + (random.nextBoolean() ? "" : String.valueOf(random.nextInt(100_000)));
            case 3 -> pick(PUNCTUATION);
            case 4 -> pick(FOREIGN);
            case 5 -> pick(EMOJI);
            case 6 -> pick(WHITESPACE).repeat(1 + random.nextInt(3));
            case 7 -> pick(CODE);
            case 8 -> randomCodePoints();
            default -> pick(WORDS) + pick(CONTRACTIONS);
        };
    }

    private String sentence() {
        StringBuilder sentence = new StringBuilder();
        int words = 1 + random.nextInt(12);
        for (int i = 0; i < words; i++) {
            String word = pick(WORDS);
            sentence.append(i == 0 ? Character.toUpperCase(word.charAt(0)) + word.substring(1) : word);
            sentence.append(i + 1 < words ? (random.nextInt(5) == 0 ? ", " : " ") : pick(new String[] {".", "!", "?", ""}));
        }
        return sentence.toString();
    }

    /** A few code points from anywhere in Unicode (no surrogates or unassigned ones), to hit rare bytes. */
    private String randomCodePoints() {
        StringBuilder text = new StringBuilder();
        int count = 1 + random.nextInt(4);
        while (count > 0) {
            int codePoint = switch (random.nextInt(4)) {
                case 0 -> random.nextInt(0x80);
                case 1 -> random.nextInt(0x800);
                case 2 -> random.nextInt(0x10000);
                default -> 0x10000 + random.nextInt(0x10000);
            };
            if (Character.isDefined(codePoint) && Character.getType(codePoint) != Character.SURROGATE) {
                text.appendCodePoint(codePoint);
                count--;
            }
        }
        return text.toString();
    }

    private String pick(String[] options) {
        return options[random.nextInt(options.length)];
    }
}
