package io.flover.cli;

import picocli.CommandLine.Command;

/** {@code flover bench}: the benchmarks that drive a server over its client API. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        subcommands = {BenchServeCommand.class, BenchFloverCommand.class},
        description = "Benchmarks that drive Flover servers through the client API, as clients do "
                + "(bench-engine measures the engine alone).")
final class BenchCommand {
}
