import ArgumentParser
import ClientCommands
import Foundation
import WireProtocol

struct DatanetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datanet", abstract: "Create datanets, contribute and review records, publish and export versions.",
        subcommands: [Create.self, List.self, Show.self, Contribute.self, Records.self, Approve.self, Reject.self, Publish.self, Export.self,
                      Grant.self])

    struct Grant: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a contributor read your private datanet and train on its versions, or with --revoke take it back (owners and operators).")

        @Argument(help: "The datanet's id.") var datanet: Int64
        @Option(help: "The contributor to grant (or revoke).") var contributor: Int64
        @Flag(help: "Take the grant back; adapters already trained keep their provenance.") var revoke = false
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let grants = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.grantRead(on: datanet, to: contributor, granting: !revoke)
            }
            options.show(grants, HumanText.grants(grants))
        }
    }

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Create a datanet that you own.")

        @Argument(help: "The datanet's name (unique).") var name: String
        @Option(help: "One line on what it holds.") var summary = ""
        @Option(help: "A longer description.") var description = ""
        @Option(help: "A tag (repeat for several).") var tag: [String] = []
        @Option(help: "The license of its records, an SPDX identifier or a name (e.g. CC-BY-4.0); required.") var license: String
        @Flag(help: "Only you can contribute and read it.") var `private` = false
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let request = Wire.DatanetCreate(
                name: name, summary: summary, description: description, tags: tag, license: license,
                visibility: `private` ? .private : .public)
            let datanet = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.createDatanet(request)
            }
            options.show(datanet, HumanText.datanet(datanet))
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "The datanets you can see, with versions and record counts.")

        @Option(help: "Only this contributor's datanets.") var owner: Int64?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let datanets = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.datanets(owner: owner)
            }
            options.show(datanets, HumanText.datanets(datanets))
        }
    }

    struct Show: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "One datanet: its description, record counts and versions.")

        @Argument(help: "The datanet's id.") var datanet: Int64
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let found = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.datanets(id: datanet)
            }
            guard let summary = found.first else { throw ClientFailure(.refused, "not_found: no datanet \(datanet) visible to you") }
            options.show(summary, HumanText.datanetDetails(summary))
        }
    }

    struct Contribute: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Contribute records to a datanet: one text, one prompt/completion pair, or a JSON Lines file.",
            discussion: """
                --file takes one record per line, {"text": ...} or {"prompt": ..., "completion": ...}, and sends each \
                as its own contribution. Lines the server refuses (duplicates, too large, ...) are reported as FILE:LINE \
                and skipped, unless --stop-on-error; the exit status is 1 if any line failed.
                """)

        @Argument(help: "The datanet's id.") var datanet: Int64
        @Option(help: "A text record.") var text: String?
        @Option(help: "The prompt of a pair record (with --completion).") var prompt: String?
        @Option(help: "The completion of a pair record (with --prompt).") var completion: String?
        @Option(help: "A JSON Lines file of records.") var file: String?
        @Flag(help: "With --file, stop at the first line that fails.") var stopOnError = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            let forms = [text != nil, prompt != nil || completion != nil, file != nil].filter { $0 }.count
            guard forms == 1 else { throw ValidationError("give exactly one of --text, --prompt with --completion, or --file") }
            guard (prompt == nil) == (completion == nil) else { throw ValidationError("--prompt and --completion go together") }
        }

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            if let file { return try await contribute(ContributionFile(path: file), settings) }
            let content: Wire.RecordContent =
                if let text { .text(Wire.TextRecord(text: Array(text.utf8))) } else {
                    .pair(Wire.PairRecord(prompt: Array((prompt ?? "").utf8), completion: Array((completion ?? "").utf8)))
                }
            let record = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.contribute(content, to: datanet)
            }
            options.show(record, HumanText.record(record))
        }

        private func contribute(_ file: ContributionFile, _ settings: ClientSettings) async throws(ClientFailure) {
            let bar = ProgressBar(total: file.lines.count)
            var (done, failures) = (0, 0)
            let outcomes = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                defer { bar.finish() }
                return try await session.contribute(file, to: datanet, stopOnError: stopOnError) { outcome in
                    if case .failure(let failure) = outcome.result {
                        failures += 1
                        bar.finish()
                        printError("\(file.location(outcome.line)): \(failure.message)")
                    }
                    done += 1
                    bar.update(done: done, detail: "\(failures) failed")
                }
            }
            let contributed = outcomes.compactMap { outcome in
                (try? outcome.result.get()).map { ["line": outcome.line, "record": WireJSON.object($0)] as [String: Any] }
            }
            let failed = outcomes.compactMap { outcome -> [String: Any]? in
                guard case .failure(let failure) = outcome.result else { return nil }
                return ["line": outcome.line, "location": file.location(outcome.line), "error": failure.message]
            }
            options.show(
                ["file": file.path, "contributed": contributed, "failed": failed],
                "\(contributed.count) records contributed to datanet \(datanet) from \(file.path), \(failed.count) failed")
            if !failed.isEmpty { throw ClientFailure(.failed, "\(failed.count) of \(file.lines.count) lines of \(file.path) failed") }
        }
    }

    struct Records: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "A datanet's records, optionally of one status.")

        @Argument(help: "The datanet's id.") var datanet: Int64
        @Option(help: "pending, approved or rejected.") var status: String?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let status = try status.map { name throws(ClientFailure) in try catalogueValue(name, of: Wire.RecordStatus.self, option: "--status") }
            let records = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.allRecords(of: datanet, status: status)
            }
            options.show(records, HumanText.records(records))
        }
    }

    struct Approve: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Approve pending records of a datanet you own.")

        @Argument(help: "Record ids.") var records: [Int64] = []
        @Option(help: "Approve every pending record of this datanet.") var allPending: Int64?
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard !records.isEmpty || allPending != nil else { throw ValidationError("give record ids, or --all-pending DATANET") }
        }

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            try await review(records, allPendingOf: allPending, .approve, note: nil, options: options, settings)
        }
    }

    struct Reject: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Reject pending records of a datanet you own.")

        @Argument(help: "Record ids.") var records: [Int64]
        @Option(help: "Why, kept with the review.") var note: String?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            try await review(records, allPendingOf: nil, .reject, note: note, options: options, settings)
        }
    }

    struct Publish: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Snapshot a datanet's approved records as its next version.")

        @Argument(help: "The datanet's id.") var datanet: Int64
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let version = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.publish(datanet)
            }
            options.show(version, HumanText.version(version))
        }
    }

    struct Export: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a datanet version as JSON Lines, checked against the server's SHA-256.",
            discussion: "Without --out the records go to standard output and the summary to standard error.")

        @Argument(help: "The datanet's id.") var datanet: Int64
        @Argument(help: "The version number.") var version: UInt32
        @Option(help: "Write to this file (replaced only once the download is verified).") var out: String?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let ref = Wire.VersionRef(datanet: datanet, number: version)
            try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                if let out {
                    let end = try await session.export(ref, toFile: out)
                    options.show(end, HumanText.exported(end, version: ref, to: out))
                } else {
                    let end = try await session.export(ref) { FileHandle.standardOutput.write(Data($0)) }
                    printError(options.json ? WireJSON.line(end) : HumanText.exported(end, version: ref, to: "standard output"))
                }
            }
        }
    }
}

/// Reviews `records` (and every pending record of `datanet`), printing each outcome as it comes.
private func review(
    _ records: [Int64], allPendingOf datanet: Int64?, _ decision: Wire.ReviewDecision, note: String?, options: ClientOptions,
    _ settings: ClientSettings
) async throws(ClientFailure) {
    let outcomes = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
        try await session.review(records, allPendingOf: datanet, decision, note: note) { outcome in
            switch outcome.result {
            case .success(let record): if !options.json { print(HumanText.record(record)) }
            case .failure(let failure): printError("record \(outcome.record): \(failure.message)")
            }
        }
    }
    let failed = outcomes.compactMap { outcome -> [String: Any]? in
        guard case .failure(let failure) = outcome.result else { return nil }
        return ["record": outcome.record, "error": failure.message]
    }
    if options.json { print(WireJSON.line(["reviewed": outcomes.compactMap { try? $0.result.get() }, "failed": failed])) }
    if !failed.isEmpty { throw ClientFailure(.failed, "\(failed.count) of \(outcomes.count) records were not reviewed") }
}
