package io.flover.cli;

import static io.flover.cli.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The coordinator's flag checks that come before it reads the model or joins a cluster. */
class CoordinatorCommandTest {
    @Test
    void aWorkerServerNameNeedsTlsToWorkers() {
        GenerateCommandTest.Run r = run("coordinator", "--model", "/nonexistent", "--worker-tls-server-name", "flover-worker");
        assertEquals(Flover.USAGE_ERROR, r.exitCode());
        assertTrue(r.err().startsWith("flover coordinator: --worker-tls-server-name needs --worker-tls-ca"), r.err());
    }
}
