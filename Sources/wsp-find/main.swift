import ArgumentParser
import WhisperBackup

struct WspFind: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsp-find",
        abstract: "Select whisper files under a root by metric glob.",
        discussion: """
            Walks ROOT and writes one file record per .wsp file whose metric name matches a GLOB.
            Globs: * (any run, dots included), ?, [abc], [!a-z], {a,b}. Directories that cannot
            hold a match are not entered; files behind symlinks are taken only inside the root.
            A file whose path does not map back to its metric (a '.' inside a file or directory
            name) or whose name is not UTF-8 is refused with one line, never stored.

            OUTPUT RECORDS (TAB-separated)
              METRIC  PATH

            EXAMPLE
              wsp-find --root /opt/graphite/storage/whisper 'servers.*' | wsp-snap --spool /var/tmp/wsp

            \(exitStatusHelp)
            """,
        version: wspVersion)

    @Option(help: ArgumentHelp("Whisper root directory.", valueName: "dir"))
    var root: String

    @Argument(help: ArgumentHelp("Metric globs (default: every metric).", valueName: "glob"))
    var globs: [String] = []

    @OptionGroup(title: "Output") var output: OutputOptions

    func run() throws {
        let patterns = try MetricGlob.parseArguments(globs.isEmpty ? ["*"] : globs)
        try Find(root: root, globs: patterns).run(output: RecordWriter(), diagnostics: output.diagnostics("wsp-find"))
    }
}

ToolMain.run(WspFind.self, name: "wsp-find")
