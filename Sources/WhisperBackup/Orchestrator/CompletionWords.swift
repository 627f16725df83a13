/// Shell completion of whisper-backup's words: a mode first (whisper-restore has its own), then
/// a backend.
public enum CompletionWords {
    public static let modes = RunMode.allCases.map(\.rawValue)
    public static let backends = ["disk", "s3", "gcs", "swift", "noop", "file://", "s3://", "swift://"]

    /// `words`: the command line (the command first), `index`: the word being completed.
    public static func positional(_ words: [String], index: Int, prefix: String,
                                  wrapperMode: String? = system_getenv("WSP_WRAPPER_MODE")) -> [String] {
        let before = words.prefix(max(0, min(index, words.count))).dropFirst()
        let command = words.first.map(Path.lastComponent) ?? ""
        let hasMode = wrapperMode != nil || command.hasPrefix("whisper-restore") || before.contains { modes.contains($0) }
        return (hasMode ? backends : modes).filter { $0.hasPrefix(prefix) }
    }
}
