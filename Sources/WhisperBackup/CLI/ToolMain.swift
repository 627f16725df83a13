import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// A command that takes records as trailing arguments (`xargs -d '\n' -n K tool ...`).
public protocol RecordArguments: ParsableCommand {
    var records: [String] { get set }
}

/// The one `main()` of every tool: maps usage and configuration errors to exit 2 (where
/// swift-argument-parser would use 64), failed records to 1, a stop by SIGINT/SIGTERM to
/// 128+signal (`exitCode(for:)`), and prints errors as `tool: message` on one line.
public enum ToolMain {
    public static func run<C: ParsableCommand>(_ type: C.Type, name: String) -> Never {
        Signals.install()
        Redaction.registerEnvironment()
        var command: ParsableCommand
        var trailing: [String] = []
        do {
            // The records xargs appends (the trailing arguments that hold a tab) bypass the
            // parser, whose work grows with the square of the argument count: 1,000 records
            // cost it 30 ms a process, 3,000 records 200 ms.
            var arguments = Array(CommandLine.arguments.dropFirst())
            var start = arguments.count
            while start > 0, arguments[start - 1].utf8.contains(9) { start -= 1 }
            trailing = Array(arguments[start...])
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
            if C.exitCode(for: error) == .success { C.exit(withError: error) }
            // One line, as every other refusal: `tool: what is wrong (tool --help)`.
            var message = C.message(for: error)
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            var first = message.split(whereSeparator: \.isNewline).first.map(String.init) ?? message
            // The arguments taken for records above may be an option's value or the store
            // with a tab in it, which the message alone would leave a riddle.
            if let record = trailing.first {
                first += "; an argument holding a tab is read as a record: \(Diagnostics.shown(record))"
            }
            terminate(name, (2, "\(first) (see \(name) --help)"))
        }
        do {
            try command.run()
        } catch {
            // Help and version of a subcommand arrive here, from the parser's own command.
            if C.exitCode(for: error) == .success { C.exit(withError: error) }
            RecordWriter.flushAll()
            terminate(name, exitCode(for: error, signal: Signals.pending, readerLeft: RecordWriter.readerLeft))
        }
        RecordWriter.flushAll()
        terminate(name, exitCode(for: nil, signal: Signals.pending, readerLeft: RecordWriter.readerLeft))
    }

    /// The exit status of a run that ended with `error` (nil: it finished) and the line to
    /// print: usage and configuration errors 2 (nothing was done: the store was not even
    /// opened), failed records 1, a store that failed after opening 1 (work may have been
    /// done: never 2), a stop by a signal 128+signal, a reader of stdout that went away 141.
    /// - Parameters:
    ///   - signal: the stop signal received (SIGINT, SIGTERM), 0 for none.
    ///   - readerLeft: whether the reader of standard output went away.
    public static func exitCode(for error: Error?, signal: Int32, readerLeft: Bool) -> (code: Int32, message: String?) {
        switch error {
        case let e as ConfigError: return (2, e.message)
        case let e as ValidationError: return (2, e.message)
        case let e as ExitCode: return (e.rawValue, nil)
        default: break
        }
        if signal != 0 { return (128 + signal, nil) }
        switch error {
        case nil, is RecordsFailed: break
        case let e as StoreError: return (1, e.message)
        case let e?: return (2, "\(e)")
        }
        if readerLeft { return (141, "stopped: the reader of standard output went away; the records after it were not processed") }
        return (error == nil ? 0 : 1, nil)
    }

    /// The one way out: removes the temp files of the run, prints the message as
    /// `tool: message` on one line, exits.
    static func terminate(_ name: String, _ outcome: (code: Int32, message: String?)) -> Never {
        TempFiles.removeAll()
        if let message = outcome.message { system_write_stderr(Redaction.apply("\(name): \(message)") + "\n") }
        system_exit(outcome.code)
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
