package io.flover.model.tokenizer;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits normalized text into the words that BPE tokenizes one by one, mirroring the
 * pre-tokenizers of tokenizer.json.
 */
@FunctionalInterface
interface PreTokenizer {

    /** Receives words; {@code atStart} tells whether the word begins at offset 0 of the input text. */
    @FunctionalInterface
    interface Sink {
        void accept(String word, boolean atStart);
    }

    /** When Metaspace puts its replacement character in front of a piece of text. */
    enum PrependScheme { ALWAYS, FIRST, NEVER }

    /** GPT-2's split into contractions, letter runs, digit runs, other symbols and whitespace. */
    String GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    void split(String text, boolean atStart, Sink out);

    /**
     * Compiles a pattern of tokenizer.json (written for Oniguruma) for Java. Unicode character
     * classes make {@code \s}, {@code \w} and case-insensitive matching Unicode-aware as there.
     */
    static Pattern compile(String regex) {
        return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
    }

    /** Steps applied in order, each to every word of the one before. */
    static PreTokenizer sequence(List<PreTokenizer> steps) {
        PreTokenizer result = (text, atStart, out) -> out.accept(text, atStart);
        for (PreTokenizer step : steps) {
            PreTokenizer before = result;
            result = (text, atStart, out) -> before.split(text, atStart, (word, first) -> step.split(word, first, out));
        }
        return result;
    }

    /**
     * Splits on the matches of {@code pattern}, each match and each stretch between matches a
     * word ({@code Split} with behavior {@code Isolated}).
     */
    static PreTokenizer isolate(Pattern pattern) {
        return (text, atStart, out) -> {
            Matcher matcher = pattern.matcher(text);
            int done = 0;
            while (matcher.find()) {
                if (matcher.start() > done) {
                    out.accept(text.substring(done, matcher.start()), atStart && done == 0);
                }
                if (matcher.end() > matcher.start()) {
                    out.accept(matcher.group(), atStart && matcher.start() == 0);
                }
                done = matcher.end();
            }
            if (done < text.length()) {
                out.accept(text.substring(done), atStart && done == 0);
            }
        };
    }

    /**
     * GPT-2's {@code ByteLevel}: optionally a space in front of each piece that lacks one,
     * optionally the GPT-2 split, then each word as its byte-level string.
     */
    static PreTokenizer byteLevel(boolean addPrefixSpace, boolean useRegex) {
        PreTokenizer split = useRegex ? isolate(compile(GPT2_PATTERN)) : (text, atStart, out) -> out.accept(text, atStart);
        return (text, atStart, out) -> split.split(addPrefixSpace && !text.startsWith(" ") ? " " + text : text, atStart,
                (word, first) -> out.accept(ByteLevel.encode(word), first));
    }

    /**
     * SentencePiece's {@code Metaspace}: spaces become {@code replacement}, which is also put in
     * front of a piece as {@code scheme} says, and optionally a word starts at each replacement.
     */
    static PreTokenizer metaspace(char replacement, PrependScheme scheme, boolean split) {
        return (text, atStart, out) -> {
            String s = text.replace(' ', replacement);
            boolean prepend = switch (scheme) {
                case ALWAYS -> true;
                case FIRST -> atStart;
                case NEVER -> false;
            };
            if (prepend && (s.isEmpty() || s.charAt(0) != replacement)) {
                s = replacement + s;
            }
            int start = 0;
            if (split) {
                for (int i = 1; i < s.length(); i++) {
                    if (s.charAt(i) == replacement) {
                        out.accept(s.substring(start, i), atStart && start == 0);
                        start = i;
                    }
                }
            }
            out.accept(s.substring(start), atStart && start == 0);
        };
    }
}
