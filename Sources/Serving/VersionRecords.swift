import Foundation
import Store
import Tokenizers
import Training

extension Store {
    /// The records of `versions`, in order, exactly as the store exports them (written to `path`), read back as
    /// training records tokenized into bytes, as the jobs train and index them.
    func trainingRecords(of versions: [DatanetVersionRef], exportedTo path: String, vocabularySize: Int) throws -> [TrainingRecord] {
        var lines = Data()
        for version in versions { lines.append(try exportJSONL(version)) }
        try lines.write(to: URL(fileURLWithPath: path), options: .atomic)
        let tokenizer = try ByteTokenizer(vocabularySize: vocabularySize)
        return try readTrainingRecords(path: path, vocabularySize: vocabularySize, encode: tokenizer.encode)
    }
}
