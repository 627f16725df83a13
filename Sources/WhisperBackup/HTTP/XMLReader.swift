/// One element of a small XML document: its local name (namespace prefix dropped), its
/// child elements and its text (entities decoded).
public final class XMLElement {
    public let name: String
    public internal(set) var children: [XMLElement] = []
    public internal(set) var text = ""

    init(name: String) { self.name = name }

    /// The first child element called `name`.
    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }

    /// Every child element called `name`, in document order.
    public func all(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }

    /// The text of the first child called `name`.
    public subscript(_ name: String) -> String? { child(name)?.text }
}

/// A purpose-built reader for the S3 responses this project reads (listings, bulk delete
/// results, error documents): elements, attributes skipped, text with the five named
/// entities and numeric character references, CDATA, comments and the XML declaration.
/// No DTDs, no external entities. Malformed input throws.
public enum XMLReader {
    public struct Malformed: Error, CustomStringConvertible {
        public var description: String
    }

    /// The root element of `bytes`.
    public static func parse(_ bytes: [UInt8]) throws -> XMLElement {
        var stack: [XMLElement] = []
        var root: XMLElement?
        var text: [UInt8] = []
        var i = 0
        let n = bytes.count
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }  // a UTF-8 byte order mark
        func fail(_ why: String) -> Malformed { Malformed(description: "malformed XML at byte \(i): \(why)") }
        func starts(_ s: String, at k: Int) -> Bool {
            let u = Array(s.utf8)
            return k + u.count <= n && Array(bytes[k..<(k + u.count)]) == u
        }
        func find(_ s: String, from k: Int) -> Int? {
            let u = Array(s.utf8)
            var j = k
            while j + u.count <= n {
                if bytes[j] == u[0] && Array(bytes[j..<(j + u.count)]) == u { return j }
                j += 1
            }
            return nil
        }
        func localName(_ raw: ArraySlice<UInt8>) -> String {
            let s = raw.lastIndex(of: UInt8(ascii: ":")).map { raw[($0 + 1)...] } ?? raw
            return String(decoding: s, as: UTF8.self)
        }
        func flushText() throws {
            if let top = stack.last, !text.isEmpty { top.text += try decodeEntities(text) }
            text.removeAll(keepingCapacity: true)
        }

        while i < n {
            let b = bytes[i]
            if b != UInt8(ascii: "<") {
                if stack.isEmpty {
                    guard b == 32 || b == 9 || b == 10 || b == 13 else {
                        throw fail("text outside the root element")
                    }
                } else {
                    text.append(b)
                }
                i += 1
                continue
            }
            if starts("<?", at: i) {
                guard let e = find("?>", from: i + 2) else { throw fail("unterminated declaration") }
                i = e + 2
            } else if starts("<!--", at: i) {
                guard let e = find("-->", from: i + 4) else { throw fail("unterminated comment") }
                i = e + 3
            } else if starts("<![CDATA[", at: i) {
                guard let e = find("]]>", from: i + 9), !stack.isEmpty else { throw fail("bad CDATA") }
                try flushText()
                stack.last!.text += String(decoding: bytes[(i + 9)..<e], as: UTF8.self)
                i = e + 3
            } else if starts("<!", at: i) {
                throw fail("DTDs are not accepted")
            } else if starts("</", at: i) {
                guard let e = bytes[i...].firstIndex(of: UInt8(ascii: ">")) else { throw fail("unterminated end tag") }
                var nameEnd = e
                while nameEnd > i + 2 && [32, 9, 10, 13].contains(bytes[nameEnd - 1]) { nameEnd -= 1 }
                let name = localName(bytes[(i + 2)..<nameEnd])
                try flushText()
                guard let top = stack.popLast(), top.name == name else { throw fail("unexpected </\(name)>") }
                if stack.isEmpty { root = top }
                i = e + 1
            } else {
                // A start tag; attribute values may contain ">", so skip quoted text.
                var j = i + 1
                var quote: UInt8 = 0
                while j < n {
                    let c = bytes[j]
                    if quote != 0 {
                        if c == quote { quote = 0 }
                    } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                        quote = c
                    } else if c == UInt8(ascii: ">") {
                        break
                    }
                    j += 1
                }
                guard j < n else { throw fail("unterminated start tag") }
                let selfClosing = bytes[j - 1] == UInt8(ascii: "/")
                var nameEnd = i + 1
                while nameEnd < j && ![32, 9, 10, 13, UInt8(ascii: "/")].contains(bytes[nameEnd]) { nameEnd += 1 }
                guard nameEnd > i + 1 else { throw fail("empty tag name") }
                guard root == nil else { throw fail("a second root element") }
                try flushText()
                let element = XMLElement(name: localName(bytes[(i + 1)..<nameEnd]))
                stack.last?.children.append(element)
                if selfClosing {
                    if stack.isEmpty { root = element }
                } else {
                    stack.append(element)
                }
                i = j + 1
            }
        }
        guard stack.isEmpty, let root else { throw Malformed(description: "malformed XML: document ends inside an element or has none") }
        return root
    }

    /// Decodes `&amp; &lt; &gt; &quot; &apos; &#N; &#xH;`.
    static func decodeEntities(_ raw: [UInt8]) throws -> String {
        guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
        var out = [UInt8]()
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            guard raw[i] == UInt8(ascii: "&") else { out.append(raw[i]); i += 1; continue }
            guard let semi = raw[i...].firstIndex(of: UInt8(ascii: ";")), semi - i <= 12 else {
                throw Malformed(description: "malformed XML: bad entity")
            }
            let name = String(decoding: raw[(i + 1)..<semi], as: UTF8.self)
            switch name {
            case "amp": out.append(UInt8(ascii: "&"))
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                var value: UInt32?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    value = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    value = UInt32(name.dropFirst(), radix: 10)
                }
                guard let v = value, let scalar = Unicode.Scalar(v) else {
                    throw Malformed(description: "malformed XML: unknown entity &\(name);")
                }
                out += Array(String(Character(scalar)).utf8)
            }
            i = semi + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `text` escaped for element content and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\r": out += "&#13;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Whether XML 1.0 can carry `text` at all (it cannot hold most control characters).
    public static func canRepresent(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { $0.value >= 0x20 || $0 == "\t" || $0 == "\n" || $0 == "\r" }
            && !text.unicodeScalars.contains { $0.value == 0xFFFE || $0.value == 0xFFFF }
    }
}
