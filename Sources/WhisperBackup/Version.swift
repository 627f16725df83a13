/// The project's version: every tool's `--version`, and the HTTP User-Agent.
public let wspVersion = "0.1.0"
