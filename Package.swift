// swift-tools-version:6.0
import PackageDescription

// Six thin command-line tools and the whisper-backup command that runs them, over one library. System libraries come through
// module maps; install their -dev packages first (scripts/deps.sh does it).
let tools = ["wsp-find", "wsp-snap", "wsp-push", "wsp-pull", "wsp-merge", "wsp-prune", "whisper-backup"]

let package = Package(
    name: "whisper-backup",
    products: tools.map { .executable(name: $0, targets: [$0]) } + [
        .library(name: "WhisperBackup", targets: ["WhisperBackup"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CDeflate", providers: [.apt(["libdeflate-dev"])]),
        // libcurl is loaded at its first use (see Sources/CCurl): its header is needed to build.
        .target(name: "CCurl"),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "CSystemShims"),
        .target(name: "CDeflateBlocks"),
        .target(
            name: "WhisperBackup",
            dependencies: [
                "CZlib", "CDeflate", "CDeflateBlocks", "CCurl", "CCrypto", "CSystemShims",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "WhisperBackupTests", dependencies: ["WhisperBackup"], exclude: ["Fixtures"]),
    ] + tools.map {
        .executableTarget(name: $0, dependencies: ["WhisperBackup",
            .product(name: "ArgumentParser", package: "swift-argument-parser")])
    },
    // The tools are single-threaded processes (parallelism comes from xargs -P); Swift 5
    // mode spares global C state such as stderr the Sendable ceremony.
    swiftLanguageModes: [.v5]
)
