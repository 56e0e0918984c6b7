import Foundation
import LlamaModel
import SampleCorpus
import TensorCore
import Testing
import Training
@testable import Attribution

@Suite struct EvaluationStatisticsTests {
    @Test func spearmanMatchesItsDefinitionWithTies() {
        #expect(EvaluationStatistics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1)
        #expect(EvaluationStatistics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1)
        // Ties take their mean rank: ranks [1.5, 1.5, 3, 4] against [1, 2, 3, 4].
        let expected = 0.9486832980505138
        #expect(abs(EvaluationStatistics.spearman([5, 5, 6, 7], [1, 2, 3, 4]) - expected) < 1e-12)
        #expect(EvaluationStatistics.spearman([1, 1, 1], [1, 2, 3]) == 0)
    }

    @Test func aucIsTheProbabilityAPositiveOutscoresANegative() {
        var random = SeededRandom(seed: 5)
        let scores = (0..<37).map { _ in Double(random.next() % 7) }
        let positives = (0..<37).map { _ in random.next() % 3 == 0 }
        var wins = 0.0, pairs = 0.0
        for i in scores.indices where positives[i] {
            for j in scores.indices where !positives[j] {
                pairs += 1
                wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0
            }
        }
        #expect(abs(EvaluationStatistics.rocAUC(scores: scores, positives: positives) - wins / pairs) < 1e-12)
        #expect(EvaluationStatistics.rocAUC(scores: [3, 2, 1, 0], positives: [true, true, false, false]) == 1)
    }

    @Test func bootstrapIntervalBracketsTheMeanAndIsSeeded() {
        var random = SeededRandom(seed: 9)
        let values = (0..<20).map { _ in Double(random.next() % 1000) / 1000 }
        let interval = EvaluationStatistics.meanWithInterval(values, seed: 3)
        #expect(interval.low <= interval.mean && interval.mean <= interval.high && interval.low < interval.high)
        #expect(EvaluationStatistics.meanWithInterval(values, seed: 3) == interval)
        #expect(EvaluationStatistics.meanWithInterval([2, 2, 2]).low == 2)
    }
}

@Suite struct AttributionEvaluationTests {
    @Test func benchmarkDataIsSeededWithAFifthCorrupted() {
        let data = AttributionBenchmark(seed: 4, recordsPerDomain: 10, factCount: 3, heldOutPerDomain: 2)
        #expect(data.training.count == 33 && data.queries.count == 6 && data.validation.count == 6)
        #expect(data.corrupted.filter { $0 }.count == 6)
        #expect(data.corrupted.suffix(3).allSatisfy { !$0 }, "facts are never corrupted")
        for (output, row) in data.facts {
            #expect(data.training[row].completion == output.prompt + output.completion)
        }
        #expect(Set(data.training.map(\.id)).count == data.training.count)
        #expect(AttributionBenchmark(seed: 4, recordsPerDomain: 10, factCount: 3, heldOutPerDomain: 2).training == data.training)
    }

    @Test func evaluatorRunsEveryExperimentDeterministically() throws {
        let model = try tinyLlama()
        let records = randomRecords(8, seed: 91, vocabularySize: model.config.vocabularySize).map(\.sequence)
        var options = TrainingOptions(totalSteps: 3)
        options.batchSize = 4
        options.learningRate = 1e-2
        let recipe = EvaluationRecipe(
            lora: LoRAConfig(rank: 2, alpha: 4, targets: [.query, .value]), options: options, checkpointEvery: 2)
        let evaluator = AttributionEvaluator(model: model, recipe: recipe)
        #expect(try evaluator.train(records).learningRates.count == 2)

        let queries = Array(records.prefix(2))
        let lds = try evaluator.linearDatamodelingScore(records: records, queries: queries, subsets: 4, seed: 1)
        #expect(Set(lds.perQuery.keys) == Set(ScorerKind.allCases))
        #expect(lds.perQuery.values.allSatisfy { $0.count == 2 && $0.allSatisfy { (-1...1).contains($0) } })
        let tracin = lds.perQuery[.tracIn]!, gradDot = lds.perQuery[.gradDot]!
        #expect(lds.difference(.tracIn, over: .gradDot).mean == (zip(tracin, gradDot).map { $0 - $1 }.reduce(0, +) / 2))
        #expect(lds.difference(.gradDot, over: .gradDot) == MeanInterval(mean: 0, low: 0, high: 0, level: 0.95, count: 2))
        #expect(try evaluator.linearDatamodelingScore(records: records, queries: queries, subsets: 4, seed: 1) == lds)

        let corrupted = records.indices.map { $0 % 4 == 0 }
        let detection = try evaluator.corruptionDetection(records: records, corrupted: corrupted, validation: queries)
        #expect(detection[.gradCos]?.selfInfluenceAUC == nil && detection[.dataInf]?.selfInfluenceAUC != nil)
        #expect(detection.values.allSatisfy { $0.validationAUC >= 0 && $0.validationAUC <= 1 })

        // A training record queried against itself: Grad-Cos puts it first (cosine 1).
        let tracing = try evaluator.factTracing(
            records: records, contributors: records.indices.map { "c\($0)" }, facts: [(records[5], 5), (records[2], 2)])
        #expect(tracing[.gradCos] == FactTracing(recordAccuracy: 1, contributorAccuracy: 1, facts: 2))
    }
}
