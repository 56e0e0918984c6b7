// The child process of the store's crash and multi-process tests.
//
//     store-crash-writer <directory> <adapter-id> <datanet-id> <tag> <count> <payer-id>
//
// Opens the store in <directory> and writes <count> pairs of writes (0: until killed): an inference <payer-id> pays
// for (from a balance an operator deposited), paid to the
// contributors of the adapter's training records (request id "<tag>-<i>"), then a text record contributed to
// <datanet-id> by its owner ("<tag> burst record <i>"). After each write commits, and only then, it prints one
// line to stdout with one unbuffered write, so that every line the parent reads names an acknowledged (durable) write:
//
//     INF <request-id> <fee> <last-ledger-seq>
//     REC <record-id> <tag> <i>
//
// It ends with "DONE" after <count> pairs. Errors go to stderr with exit status 1.
import Foundation
import Store

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("store-crash-writer: \(message)\n".utf8))
    exit(1)
}

/// Writes the line with one write(2) on stdout: unbuffered, so nothing waits in a buffer when the process is
/// killed, and atomic on a pipe (lines are far shorter than PIPE_BUF).
func acknowledge(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments
guard arguments.count == 7, let adapterRaw = Int64(arguments[2]), let datanetRaw = Int64(arguments[3]),
    let count = Int(arguments[5]), count >= 0, let payerRaw = Int64(arguments[6])
else {
    fail("usage: store-crash-writer <directory> <adapter-id> <datanet-id> <tag> <count> <payer-id>")
}
let payer = ContributorID(payerRaw)
let directory = URL(fileURLWithPath: arguments[1])
let adapterID = AdapterID(adapterRaw)
let datanetID = DatanetID(datanetRaw)
let tag = arguments[4]

do {
    let store = try Store(directory: directory)
    let adapter = try store.adapter(adapterID)
    var trainingRecords: [RecordID] = []
    for version in adapter.trainedOn { trainingRecords += try store.recordIDs(in: version) }
    trainingRecords = Array(Set(trainingRecords)).sorted()
    guard !trainingRecords.isEmpty else { fail("the adapter has no training records") }
    let owner = try store.datanet(datanetID).owner

    var i = 0
    while count == 0 || i < count {
        // A deterministic fee and share vector for write i.
        let fee = Int64(1_000 + (i &* 7_919) % 1_000_000)
        var shares: [RecordID: Double] = [:]
        for k in 0..<min(3, trainingRecords.count) {
            shares[trainingRecords[(i + k * 5) % trainingRecords.count], default: 0] += Double(k + 1) / 6
        }
        let requestID = "\(tag)-\(i)"
        let receipt = try store.recordInference(
            NewInference(
                requestID: requestID, adapter: adapterID,
                promptOutputHash: InferenceHash.of(prompt: "prompt \(requestID)", output: "output \(requestID)"),
                method: "crash-test", fee: fee, recordShares: shares, payer: payer))
        acknowledge("INF \(requestID) \(fee) \(receipt.entries.last?.seq ?? 0)")

        let record = try store.contribute(.text("\(tag) burst record \(i)"), to: datanetID, by: owner)
        acknowledge("REC \(record.id.rawValue) \(tag) \(i)")
        i += 1
    }
    acknowledge("DONE")
} catch {
    fail("\(error)")
}
