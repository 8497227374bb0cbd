package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.model.tokenizer.StreamDecoder;
import java.util.List;
import org.junit.jupiter.api.Test;

class TextStreamTest {
    /** Each id decodes to one piece of text. */
    private static StreamDecoder pieces(String... text) {
        return new StreamDecoder() {
            @Override
            public String push(int id) {
                return text[id];
            }

            @Override
            public String flush() {
                return "";
            }
        };
    }

    @Test
    void holdsBackAPossibleStopStringUntilItIsDecided() {
        TextStream s = new TextStream(pieces("Hello", " wor", "ld", " E", "ND", "!"), List.of(" END"));
        assertEquals("Hello", s.push(0));
        assertEquals(" wor", s.push(1));
        assertEquals("ld", s.push(2));
        assertEquals("", s.push(3), "' E' could start ' END'");
        assertEquals("", s.push(4));
        assertTrue(s.stopped());
        assertEquals("", s.push(5));
        assertEquals("", s.finish());
    }

    @Test
    void releasesHeldTextWhenItTurnsOutNotToBeAStop() {
        TextStream s = new TextStream(pieces("a <", "b", "<s", "top>"), List.of("<stop>"));
        assertEquals("a ", s.push(0));
        assertEquals("<b", s.push(1));
        assertEquals("", s.push(2));
        assertEquals("", s.push(3));
        assertTrue(s.stopped());
    }

    @Test
    void stopInsideOnePieceKeepsTheTextBeforeIt() {
        TextStream s = new TextStream(pieces("one. two"), List.of("."));
        assertEquals("one", s.push(0));
        assertTrue(s.stopped());
    }

    @Test
    void finishReleasesAnUndecidedTail() {
        TextStream s = new TextStream(pieces("x", "ST"), List.of("STOP"));
        assertEquals("x", s.push(0));
        assertEquals("", s.push(1));
        assertEquals("ST", s.finish());
    }
}
