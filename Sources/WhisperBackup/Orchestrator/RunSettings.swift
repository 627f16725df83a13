/// What the operator asked of `whisper-backup`, as given on its command line (the original
/// Python tool's options). `RunPlan` decides from it what runs.
public struct RunSettings: Sendable {
    public var positional: [String] = []
    /// The mode a wrapper named (backup.sh: backup, restore.sh: restore) when the first
    /// word does not name one.
    public var defaultMode: String? = nil
    public var prefix = "/opt/graphite/storage/whisper"
    public var processes = 4
    public var retention: Int? = nil
    public var purge: Int? = nil
    public var noop = false
    public var bucket = "graphite-backups"
    public var metrics = "*"
    public var date: String? = nil
    public var storagePath: String? = nil
    public var debug = false
    public var quiet = false
    public var nolog = false
    public var logfile = "/var/log/whisper-backup.log"
    public var syslog = false
    public var nolock = false
    public var lockfile = "/var/lock/whisper-backup.lock"
    public var locktimeout = 90
    public var splay = 0
    public var nostamp = false
    public var stampfile = "/var/tmp/whisper-backup.success"
    public var spool: String? = nil
    public var spoolMax = "1G"
    public var endpoint: String? = nil
    /// wsp-push --connections (nil: its default).
    public var connections: Int? = nil
    public var region: String? = nil
    public var state: String? = nil
    public var full = false
    /// wsp-snap --level (nil: its default).
    public var level: Int? = nil
    /// wsp-snap --full-every (nil: its default).
    public var fullEvery: Int? = nil
    public var createBucket = false
    public var force = false
    public var metricsFile: String? = nil
    public var carbon: String? = nil
    public var carbonPrefix: String? = nil
    public var progress: Bool? = nil
    public var printPipeline = false
    public init() {}
}

public enum RunMode: String, Sendable, CaseIterable { case backup, restore, purge, list }
