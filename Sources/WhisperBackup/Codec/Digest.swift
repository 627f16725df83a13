import CCrypto

/// Message digests and HMAC through OpenSSL libcrypto (EVP), the only file that imports it.
public struct Digest: ~Copyable {
    public enum Algorithm: Sendable {
        case sha256, sha1, md5
        var evp: OpaquePointer? {
            switch self {
            case .sha256: return EVP_sha256()
            case .sha1: return EVP_sha1()
            case .md5: return EVP_md5()
            }
        }
        public var hexLength: Int {
            switch self { case .sha256: 64; case .sha1: 40; case .md5: 32 }
        }
    }

    private let ctx: OpaquePointer

    public init(_ algorithm: Algorithm) {
        ctx = EVP_MD_CTX_new()!
        EVP_DigestInit_ex(ctx, algorithm.evp, nil)
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public consuming func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        return Array(out[0..<Int(len)])
    }

    public static func hash(_ algorithm: Algorithm, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var d = Digest(algorithm)
        d.update(bytes)
        return d.finish()
    }

    public static func hash(_ algorithm: Algorithm, _ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash(algorithm, $0) }
    }

    public static func sha256Hex(_ bytes: [UInt8]) -> String { Hex.encode(hash(.sha256, bytes)) }

    /// HMAC-SHA256 of `message` under `key` (SigV4 signing).
    public static func hmacSHA256(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 32
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, &out, &len)
            }
        }
        return out
    }
}

/// Lower-case hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `s` is exactly `length` lower-case hex digits.
    public static func isHex(_ s: Substring, length: Int) -> Bool { isHex(s.utf8, length: length) }

    public static func isHex<C: Collection>(_ bytes: C, length: Int) -> Bool where C.Element == UInt8 {
        bytes.count == length && bytes.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
