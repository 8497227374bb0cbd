package io.flover.model.tokenizer;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/** Finds added tokens in text, leftmost first and longest among those starting at the same place. */
final class AddedTokenMatcher {

    /** A piece of split text: an added token's id, or -1 for text between added tokens. */
    record Segment(int tokenId, String text, int start) {
    }

    private static final Pattern WHITESPACE = Pattern.compile("\\s", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern WORD_CHARACTER = Pattern.compile("\\w", Pattern.UNICODE_CHARACTER_CLASS);

    private record Candidate(String pattern, AddedToken token) {
    }

    /** Candidates by their first character, longest pattern first. */
    private final Map<Character, List<Candidate>> byFirstChar = new HashMap<>();
    /** The keys of byFirstChar, to skip other characters without boxing them. */
    private final BitSet firstChars = new BitSet();

    /**
     * @param patterns the text each token matches: its content, or for a {@code normalized}
     *     token its content after normalization
     */
    AddedTokenMatcher(Map<AddedToken, String> patterns) {
        patterns.forEach((token, pattern) -> {
            if (!pattern.isEmpty()) {
                byFirstChar.computeIfAbsent(pattern.charAt(0), c -> new ArrayList<>()).add(new Candidate(pattern, token));
                firstChars.set(pattern.charAt(0));
            }
        });
        byFirstChar.values().forEach(list -> list.sort(
                Comparator.comparingInt((Candidate c) -> c.pattern().length()).reversed()));
    }

    /** Splits {@code text} into added tokens and the non-empty text between them, in order. */
    List<Segment> split(String text) {
        if (firstChars.isEmpty()) {
            return text.isEmpty() ? List.of() : List.of(new Segment(-1, text, 0));
        }
        List<Segment> segments = new ArrayList<>();
        int done = 0;
        int i = 0;
        while (i < text.length()) {
            Candidate match = longestAt(text, i);
            if (match == null) {
                i++;
                continue;
            }
            int start = i;
            int end = i + match.pattern().length();
            AddedToken token = match.token();
            if (token.singleWord() && (isWordCharacterBefore(text, start) || isWordCharacterAt(text, end))) {
                // Like tokenizers, the rejected match is not searched again for shorter tokens.
                i = end;
                continue;
            }
            if (token.lstrip()) {
                while (start > done && matches(WHITESPACE, text.codePointBefore(start))) {
                    start -= Character.charCount(text.codePointBefore(start));
                }
            }
            if (token.rstrip()) {
                while (end < text.length() && matches(WHITESPACE, text.codePointAt(end))) {
                    end += Character.charCount(text.codePointAt(end));
                }
            }
            if (start > done) {
                segments.add(new Segment(-1, text.substring(done, start), done));
            }
            segments.add(new Segment(token.id(), text.substring(start, end), start));
            done = end;
            i = end;
        }
        if (done < text.length()) {
            segments.add(new Segment(-1, text.substring(done), done));
        }
        return segments;
    }

    private Candidate longestAt(String text, int i) {
        if (firstChars.get(text.charAt(i))) {
            for (Candidate candidate : byFirstChar.get(text.charAt(i))) {
                if (text.startsWith(candidate.pattern(), i)) {
                    return candidate;
                }
            }
        }
        return null;
    }

    private static boolean isWordCharacterBefore(String text, int i) {
        return i > 0 && matches(WORD_CHARACTER, text.codePointBefore(i));
    }

    private static boolean isWordCharacterAt(String text, int i) {
        return i < text.length() && matches(WORD_CHARACTER, text.codePointAt(i));
    }

    private static boolean matches(Pattern characterClass, int codePoint) {
        return characterClass.matcher(Character.toString(codePoint)).matches();
    }
}
