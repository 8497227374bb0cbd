package io.flover.cli;

import picocli.CommandLine.Command;

/** {@code flover bench}: the benchmarks that drive a server over its client API. */
@Command(name = "bench", mixinStandardHelpOptions = true, subcommands = BenchServeCommand.class,
        description = "Benchmarks that drive a Flover server through its client API, as clients do "
                + "(bench-engine and bench-policies measure the engine and the scheduler in process).")
final class BenchCommand {
}
