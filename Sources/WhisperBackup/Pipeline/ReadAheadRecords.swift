extension ReadAhead {
    /// Records read ahead of the one being worked on, when the records are at hand.
    static let window = 16

    /// The records of a stage that reads a file per record, each with what `prepare` made of
    /// it. When the records are at hand (arguments) they are prepared `window` ahead of the
    /// stage and the file `prepare` names for each is read ahead; from a pipe they are taken
    /// one at a time as they come (looking ahead would wait for them). Like
    /// `RecordInput.records(until:)`, it ends when a stop is requested or the next stage went
    /// away.
    static func records<Prepared>(_ input: RecordInput, until output: RecordWriter,
                                  prepare: @escaping (Record) -> (Prepared, Item?)) -> Records<Prepared> {
        Records(input.records(until: output).makeIterator(), readAhead: input.isBuffered ? ReadAhead() : nil,
                output: output, prepare: prepare)
    }

    final class Records<Prepared>: Sequence, IteratorProtocol {
        private let records: AnyIterator<Record>
        private let readAhead: ReadAhead?
        private let output: RecordWriter
        private let prepare: (Record) -> (Prepared, Item?)
        private var ahead: [(record: Record, prepared: Prepared)] = []
        private var taken = 0
        private var exhausted = false

        init(_ records: AnyIterator<Record>, readAhead: ReadAhead?, output: RecordWriter,
             prepare: @escaping (Record) -> (Prepared, Item?)) {
            (self.records, self.readAhead, self.output, self.prepare) = (records, readAhead, output, prepare)
        }

        deinit { readAhead?.finish() }

        func next() -> (record: Record, prepared: Prepared)? {
            while !exhausted, ahead.count <= (readAhead == nil ? 0 : ReadAhead.window) {
                guard let record = records.next() else {
                    exhausted = true
                    readAhead?.flush()
                    break
                }
                let (prepared, item) = prepare(record)
                if let readAhead, let item { readAhead.add(item, index: taken + ahead.count) }
                ahead.append((record, prepared))
            }
            if ahead.isEmpty || Signals.stopRequested || output.closed { return nil }
            readAhead?.reach(taken)
            taken += 1
            return ahead.removeFirst()
        }
    }
}
