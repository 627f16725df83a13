/// Checks a downloaded version before anything uses it: the gzip stream (CRC and length of
/// every member), the digest named by the record (SHA-256, or SHA-1 for the legacy layout),
/// and the whisper header against the file's size. Returns the whisper file's bytes.
public enum VersionCheck {
    public static func verify(gzPath: String, expectedHash: String) throws -> (bytes: [UInt8], header: WhisperHeader) {
        let bytes: [UInt8]
        do {
            bytes = try Gzip.decompressFile(gzPath)
        } catch let e as GzipError {
            throw RecordError("bad object: \(e)")
        }
        let algorithm: Digest.Algorithm = expectedHash.utf8.count == 40 ? .sha1 : .sha256
        let actual = Hex.encode(Digest.hash(algorithm, bytes))
        guard actual == expectedHash.lowercased() else {
            throw RecordError("bad object: \(algorithm == .sha1 ? "SHA-1" : "SHA-256") \(actual) does not match \(expectedHash)")
        }
        do {
            let header = try bytes.withUnsafeBytes { try WhisperHeader($0, fileSize: bytes.count) }
            return (bytes, header)
        } catch {
            throw RecordError("bad object: \(error)")
        }
    }
}
