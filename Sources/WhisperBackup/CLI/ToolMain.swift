import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// The project's version, printed by every tool's `--version`.
public let wspVersion = "0.1.0"

/// Some records failed; each was reported on stderr. Exit status 1.
public struct RecordsFailed: Error, CustomStringConvertible {
    public var count: Int
    public init(count: Int) { self.count = count }
    public var description: String { "\(count) record(s) failed" }
}

/// A command that takes records as trailing arguments (`xargs -d '\n' -n K tool ...`).
public protocol RecordArguments: ParsableCommand {
    var records: [String] { get set }
}

/// The one `main()` of every tool: maps usage and configuration errors to exit 2 (where
/// swift-argument-parser would use 64), failed records to 1, a stop by SIGINT/SIGTERM to
/// 128+signal, and prints errors as `tool: message` on one line.
public enum ToolMain {
    public static func run<C: ParsableCommand>(_ type: C.Type, name: String) -> Never {
        Signals.install()
        Redaction.registerEnvironment()
        var command: ParsableCommand
        do {
            // The records xargs appends (the trailing arguments that hold a tab) bypass the
            // parser, whose work grows with the square of the argument count: 1,000 records
            // cost it 30 ms a process, 3,000 records 200 ms.
            var arguments = Array(CommandLine.arguments.dropFirst())
            var start = arguments.count
            while start > 0, arguments[start - 1].utf8.contains(9) { start -= 1 }
            let trailing = Array(arguments[start...])
            arguments.removeSubrange(start...)
            command = try C.parseAsRoot(arguments)
            if !trailing.isEmpty {
                if var taking = command as? any RecordArguments {
                    taking.records += trailing
                    command = taking
                } else {
                    command = try C.parseAsRoot(arguments + trailing)
                }
            }
        } catch {
            let code = C.exitCode(for: error)
            if code == .success { C.exit(withError: error) }
            // One line, as every other refusal: `tool: what is wrong (tool --help)`.
            var message = C.message(for: error)
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            let first = message.split(whereSeparator: \.isNewline).first.map(String.init) ?? message
            fputs(Redaction.apply("\(name): \(first) (see \(name) --help)") + "\n", stderr)
            exit(2)
        }
        do {
            try command.run()
        } catch let e as RecordsFailed {
            if Signals.stopRequested { TempFiles.removeAll(); exit(128 + Signals.pending) }
            _ = e
            readerLeft(name)
            exit(1)
        } catch let e as ConfigError {
            fputs(Redaction.apply("\(name): \(e)") + "\n", stderr)
            exit(2)
        } catch let e as ValidationError {
            fputs(Redaction.apply("\(name): \(e.message)") + "\n", stderr)
            exit(2)
        } catch let e as ExitCode {
            exit(e.rawValue)
        } catch let e as StoreError where e.kind == .transient {
            // The store kept failing (after the retries): a failure of the run, not of its
            // configuration. Credentials, access and missing buckets stay exit 2 (below).
            if Signals.stopRequested { TempFiles.removeAll(); exit(128 + Signals.pending) }
            fputs(Redaction.apply("\(name): \(e)") + "\n", stderr)
            TempFiles.removeAll()
            exit(1)
        } catch {
            if Signals.stopRequested { TempFiles.removeAll(); exit(128 + Signals.pending) }
            // Help and version of a subcommand arrive here, from the parser's own command.
            if C.exitCode(for: error) == .success { C.exit(withError: error) }
            fputs(Redaction.apply("\(name): \(error)") + "\n", stderr)
            exit(2)
        }
        TempFiles.removeAll()
        if Signals.stopRequested { exit(128 + Signals.pending) }
        readerLeft(name)
        exit(0)
    }

    /// A stage whose reader went away stopped with records not processed: never exit 0.
    static func readerLeft(_ name: String) {
        guard RecordWriter.readerLeft else { return }
        TempFiles.removeAll()
        fputs("\(name): stopped: the reader of standard output went away; the records after it were not processed\n", stderr)
        exit(141)
    }
}

/// The `EXIT STATUS` section every tool's help ends with.
public let exitStatusHelp = """
    EXIT STATUS
      0  every record succeeded
      1  some records failed (each reported on stderr as "TOOL: METRIC: reason")
      2  bad usage or configuration; nothing was done
      130/143  stopped by SIGINT/SIGTERM after finishing or undoing the current record
      141  stopped because the reader of standard output went away (records left unprocessed)
    """
