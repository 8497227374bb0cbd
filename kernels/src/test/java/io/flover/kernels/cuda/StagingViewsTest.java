package io.flover.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class StagingViewsTest {
    @Test
    void viewsReadAndWriteTheirBytesWhereverEarlierUsersLeftTheBuffer() {
        ByteBuffer pinned = ByteBuffer.allocateDirect(4096);
        StagingViews staging = new StagingViews(pinned);
        // As a step's upload does: index arrays at aligned offsets, the last one far from the start.
        staging.ints(0, 3).put(new int[] {7, 8, 9});
        staging.ints(1280, 2).put(new int[] {-1, -2});
        pinned.position(1288); // as a position-keeping user would leave it

        int[] ids = new int[3];
        staging.ints(0, 3).get(ids);
        assertArrayEquals(new int[] {7, 8, 9}, ids, "a download is read from the start of the buffer");
        int[] far = new int[2];
        staging.ints(1280, 2).get(far);
        assertArrayEquals(new int[] {-1, -2}, far);

        staging.floats(12, 2).put(new float[] {1.5f, -0f});
        float[] maxima = new float[2];
        staging.floats(12, 2).get(maxima);
        assertArrayEquals(new float[] {1.5f, -0f}, maxima, "ids then maxima, as argmax downloads them");
    }
}
