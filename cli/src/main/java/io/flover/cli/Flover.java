package io.flover.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code flover} command line. */
@Command(name = "flover", mixinStandardHelpOptions = true, versionProvider = Flover.Version.class,
        description = "Serve and run autoregressive transformer models (Llama family, GPT-2).",
        subcommands = {ServeCommand.class, CoordinatorCommand.class, WorkerCommand.class, GenerateCommand.class,
                MakeModelCommand.class, QuantizeCommand.class, BenchCommand.class, BenchEngineCommand.class, BenchAllReduceCommand.class,
                CommandLine.HelpCommand.class})
public final class Flover {
    /** Exit status of bad flags, bad input files and other errors a user can fix. */
    static final int USAGE_ERROR = 2;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new Flover());
        cli.setExecutionExceptionHandler(Flover::reportError);
        return cli;
    }

    /** One line naming what is wrong, not a stack trace: these are the user's files and flags. */
    private static int reportError(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        PrintWriter err = cmd.getErr();
        String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        if (e instanceof java.nio.file.NoSuchFileException) {
            message = "no such file: " + message;
        }
        err.println(cmd.getCommandSpec().qualifiedName() + ": " + message.lines().findFirst().orElse(""));
        if (Boolean.getBoolean("flover.debug")) {
            e.printStackTrace(err);
        }
        err.flush();
        return USAGE_ERROR;
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Flover.class.getPackage().getImplementationVersion();
            return new String[] {"flover " + (v == null ? "development build" : v)};
        }
    }
}
