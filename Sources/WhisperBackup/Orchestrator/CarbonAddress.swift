/// `--carbon HOST:PORT` and `--carbon-prefix`.
public enum CarbonAddress {
    /// HOST (a name, or an IPv6 address in brackets) and PORT, or nil.
    public static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber), let port = Int(portText) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2 {
            host = String(host.dropFirst().dropLast())
            guard host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else { return nil }
        }
        return (host, port)
    }

    /// Letters, digits, _ - : and single dots, not starting with a dot.
    public static func validPrefix(_ p: String) -> Bool {
        !p.isEmpty && !p.hasPrefix(".") && !p.contains("..")
            && p.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_:.-".contains($0)) }
    }
}
