#if canImport(Glibc)
import Glibc
#endif

/// Times in keys and records: UTC, ISO 8601 basic form `20261127T035433Z` (no `:` or `+`).
public enum Timestamp {
    /// `20261127T035433Z` for `seconds` since the epoch.
    public static func format(_ seconds: Int64) -> String {
        let tm = system_gmtime(seconds)
        let year = tm.tm_year + 1900
        if (0...9999).contains(year) {
            // Sixteen digits and letters written in place: every record of every run has a time.
            return String(unsafeUninitializedCapacity: 16) { out in
                func put(_ value: Int32, at: Int, width: Int) {
                    var v = value
                    for i in stride(from: at + width - 1, through: at, by: -1) {
                        out[i] = UInt8(48 + v % 10)
                        v /= 10
                    }
                }
                put(year, at: 0, width: 4); put(tm.tm_mon + 1, at: 4, width: 2); put(tm.tm_mday, at: 6, width: 2)
                out[8] = UInt8(ascii: "T")
                put(tm.tm_hour, at: 9, width: 2); put(tm.tm_min, at: 11, width: 2); put(tm.tm_sec, at: 13, width: 2)
                out[15] = UInt8(ascii: "Z")
                return 16
            }
        }
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return pad(tm.tm_year + 1900, 4) + pad(tm.tm_mon + 1, 2) + pad(tm.tm_mday, 2) + "T"
            + pad(tm.tm_hour, 2) + pad(tm.tm_min, 2) + pad(tm.tm_sec, 2) + "Z"
    }

    /// Parses the basic form exactly (as found in keys).
    public static func parseBasic(_ s: Substring) -> Int64? {
        let u = Array(s.utf8)
        guard u.count == 16, u[8] == UInt8(ascii: "T"), u[15] == UInt8(ascii: "Z") else { return nil }
        func num(_ r: Range<Int>) -> Int32? {
            var v: Int32 = 0
            for i in r {
                guard u[i] >= 48 && u[i] <= 57 else { return nil }
                v = v * 10 + Int32(u[i] - 48)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(4..<6), let d = num(6..<8),
              let h = num(9..<11), let mi = num(11..<13), let se = num(13..<15) else { return nil }
        return fromFields(y, mo, d, h, mi, se)
    }

    /// Parses what an operator may type for `--before`/`--now`: the basic form,
    /// `2026-11-01`, `2026-11-01T12:00:00Z`, `2026-11-01T12:00:00+00:00` (offsets honoured),
    /// `2026-11-01 12:00`, or `@SECONDS` since the epoch.
    /// A day that does not exist (`2026-02-30`), an offset beyond `±23:59`, or a time outside
    /// 1970 to 9999 is not a date (nil), never a neighbouring one.
    public static func parse(_ text: String) -> Int64? {
        guard let t = parseAny(text), validRange.contains(t) else { return nil }
        return t
    }

    /// The times a key can show: 1970-01-01 to 9999-12-31.
    public static let validRange: ClosedRange<Int64> = 0...253_402_300_799

    /// The forms `parse` takes, for messages.
    public static let acceptedForms = "2026-11-01, 2026-11-01T12:00:00Z, 2026-11-01T12:00:00+01:00, 2026-11-01 12:00, 20261101T120000Z or @SECONDS"

    static func parseAny(_ text: String) -> Int64? {
        if text.hasPrefix("@") {
            let digits = text.dropFirst()
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int64(digits)
        }
        if let v = parseBasic(Substring(text)) { return v }
        let u = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int32? {
            guard i + n <= u.count else { return nil }
            var v: Int32 = 0
            for k in i..<(i + n) {
                guard u[k] >= 48 && u[k] <= 57 else { return nil }
                v = v * 10 + Int32(u[k] - 48)
            }
            i += n
            return v
        }
        func expect(_ c: Character) -> Bool {
            if i < u.count && u[i] == c.asciiValue! { i += 1; return true }
            return false
        }
        guard let y = digits(4), expect("-"), let mo = digits(2), expect("-"), let d = digits(2) else { return nil }
        var h: Int32 = 0, mi: Int32 = 0, se: Int32 = 0
        if i < u.count {
            guard expect("T") || expect(" ") else { return nil }
            guard let hh = digits(2), expect(":"), let mm = digits(2) else { return nil }
            h = hh; mi = mm
            if expect(":") { guard let ss = digits(2) else { return nil }; se = ss }
            if expect(".") { while i < u.count && u[i] >= 48 && u[i] <= 57 { i += 1 } }
        }
        guard var t = fromFields(y, mo, d, h, mi, se) else { return nil }
        if i < u.count {
            if expect("Z") {
            } else if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
                let sign: Int64 = u[i] == UInt8(ascii: "+") ? 1 : -1
                i += 1
                guard let oh = digits(2) else { return nil }
                _ = expect(":")
                guard let om = digits(2), oh <= 23, om <= 59 else { return nil }
                t -= sign * (Int64(oh) * 3600 + Int64(om) * 60)
            } else { return nil }
        }
        return i == u.count ? t : nil
    }

    static func fromFields(_ y: Int32, _ mo: Int32, _ d: Int32, _ h: Int32, _ mi: Int32, _ s: Int32) -> Int64? {
        guard (1...12).contains(mo), (0...23).contains(h), (0...59).contains(mi), (0...60).contains(s) else { return nil }
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
        let days: [Int32] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...days[Int(mo) - 1]).contains(d) else { return nil }
        var tm = tm()
        tm.tm_year = y - 1900
        tm.tm_mon = mo - 1
        tm.tm_mday = d
        tm.tm_hour = h
        tm.tm_min = mi
        tm.tm_sec = s
        return system_timegm(tm)
    }
}
