/// The owner of a state in a store's terms: the non-secret settings that reach the store
/// again (the state itself, on the ground floor, knows no store).
extension BackupState.Owner {
    public init(url: String, id: String, settings: StoreSettings) {
        self.init(url: url, id: id, endpoint: settings.endpoint ?? "", region: settings.region ?? "",
                  pathStyle: settings.pathStyle.map { $0 ? "path" : "virtual" } ?? "")
    }

    public var settings: StoreSettings {
        var s = StoreSettings()
        s.endpoint = endpoint.isEmpty ? nil : endpoint
        s.region = region.isEmpty ? nil : region
        s.pathStyle = pathStyle.isEmpty ? nil : pathStyle == "path"
        return s
    }
}
