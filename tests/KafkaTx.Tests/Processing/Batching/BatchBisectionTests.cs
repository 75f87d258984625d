using Confluent.Kafka;
using KafkaTx.Processing;
using KafkaTx.Processing.Batching;

namespace KafkaTx.Tests.Processing.Batching;

/// <summary>
/// The poison record of a failed batch is found by retrying the batch once whole, then in halves, so that only it is
/// charged (and dead-lettered after MaxAttempts) and every good record commits, once.
/// </summary>
public class BatchBisectionTests
{
    private const int MaxAttempts = 3;
    private static readonly TopicPartition Partition = new("orders", 0);

    private static RecordKey At(long offset) => new(Partition, offset);

    /// <summary>
    /// The processor as the bisection sees it: after every abort the consumer is rewound, so the records not committed
    /// yet come back in offset order; each transaction takes as many as the bisection allows.
    /// </summary>
    private static (List<long> Committed, List<long> DeadLettered, int Transactions) Run(int records, ISet<long> poison, int maxBatchSize, Func<int, bool>? transientFailure = null)
    {
        var bisection = new BatchBisection();
        var pending = new List<long>(Enumerable.Range(0, records).Select(i => (long)i));
        var attempts = new Dictionary<long, int>();
        var committed = new List<long>();
        var deadLettered = new List<long>();
        var transactions = 0;
        while (pending.Count > 0)
        {
            transactions++;
            transactions.Should().BeLessThan(1_000, "the bisection must end");
            var batch = pending.Take(bisection.NextBatchSize(maxBatchSize)).ToList();
            var keys = batch.Select(At).ToList();
            if (attempts.TryGetValue(batch[0], out var tries) && tries >= MaxAttempts && batch.Count == 1)
            {
                // Poison: the processor writes it to the dead-letter topic in a transaction of its own.
                deadLettered.Add(batch[0]);
                bisection.Committed(keys);
                pending.RemoveAt(0);
                continue;
            }

            if (batch.Any(poison.Contains) || transientFailure?.Invoke(transactions) == true)
            {
                if (bisection.Failed(keys) is { } charged)
                {
                    charged.Should().Be(At(batch[0]));
                    attempts[batch[0]] = attempts.GetValueOrDefault(batch[0]) + 1;
                }

                continue;
            }

            committed.AddRange(batch);
            bisection.Committed(keys);
            pending.RemoveRange(0, batch.Count);
        }

        return (committed, deadLettered, transactions);
    }

    [Fact]
    public void One_poison_record_in_a_batch_is_the_only_one_dead_lettered_and_every_other_record_commits_once()
    {
        var (committed, deadLettered, transactions) = Run(records: 100, poison: new HashSet<long> { 37 }, maxBatchSize: 100);

        deadLettered.Should().Equal(37);
        committed.Should().Equal(Enumerable.Range(0, 100).Select(i => (long)i).Where(i => i != 37));
        transactions.Should().BeLessThan(25, "two whole tries, about log2(100) halvings and as many clean halves, three attempts alone and the dead-letter write: 20 here; one record at a time would take over 100");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(127)]
    public void The_poison_record_is_found_wherever_it_lies(long poison)
    {
        var (committed, deadLettered, _) = Run(records: 128, poison: new HashSet<long> { poison }, maxBatchSize: 128);

        deadLettered.Should().Equal(poison);
        committed.Should().HaveCount(127).And.OnlyHaveUniqueItems().And.NotContain(poison);
    }

    [Fact]
    public void Several_poison_records_are_each_dead_lettered_and_nothing_else()
    {
        var poison = new HashSet<long> { 3, 4, 50, 99 };

        var (committed, deadLettered, _) = Run(records: 100, poison, maxBatchSize: 40);

        deadLettered.Should().BeEquivalentTo(poison);
        committed.Should().HaveCount(96).And.OnlyHaveUniqueItems();
        committed.Should().NotIntersectWith(poison);
    }

    [Fact]
    public void A_poison_record_read_second_after_every_rewind_is_still_tried_alone_within_a_few_transactions()
    {
        // Two partitions of 100 records read in turn, as a consumer does, the good one first after every rewind: the
        // poison record (offset 0 of the other) is then the second record read. A size doubled back at every commit
        // tries it in pairs for ever (a good record alone commits, the pair after it fails, rewind), each round
        // committing one good record: about 200 transactions here instead of a few dozen.
        var bisection = new BatchBisection();
        var good = new TopicPartition("orders", 1);
        var committed = new Dictionary<TopicPartition, long> { [good] = 0, [Partition] = 0 };
        var position = new Dictionary<TopicPartition, long>(committed);
        var goodsTurn = true;
        var attempts = 0;
        var transactions = 0;
        while (committed[good] < 100 || committed[Partition] < 100)
        {
            transactions++;
            transactions.Should().BeLessThan(1_000, "the bisection must end");
            var batch = new List<RecordKey>();
            while (batch.Count < bisection.NextBatchSize(100) && (position[good] < 100 || position[Partition] < 100))
            {
                var from = (goodsTurn && position[good] < 100) || position[Partition] >= 100 ? good : Partition;
                goodsTurn = from != good;
                batch.Add(new RecordKey(from, position[from]++));
            }

            if (batch.Contains(At(0)) && !(batch.Count == 1 && attempts >= MaxAttempts))
            {
                attempts += bisection.Failed(batch) is not null ? 1 : 0;
                position = new Dictionary<TopicPartition, long>(committed); // abort, rewind
                goodsTurn = true;
                continue;
            }

            bisection.Committed(batch); // the poison record among them after MaxAttempts: dead-lettered
            foreach (var key in batch)
            {
                committed[key.TopicPartition] = key.Offset + 1;
            }
        }

        attempts.Should().Be(MaxAttempts);
        transactions.Should().BeLessThan(40, "halving finds the record in about log2(200) failures, then the size grows back");
    }

    [Fact]
    public void A_batch_that_fails_once_for_a_transient_cause_is_retried_whole_and_never_split()
    {
        var sizes = new List<int>();
        var bisection = new BatchBisection();
        var batch = Enumerable.Range(0, 50).Select(i => At(i)).ToList();

        bisection.Failed(batch).Should().BeNull("the fault is shared by 50 records");
        sizes.Add(bisection.NextBatchSize(50));
        bisection.Committed(batch);
        sizes.Add(bisection.NextBatchSize(50));

        sizes.Should().Equal(50, 50);
        bisection.IsIsolating.Should().BeFalse();
    }

    [Fact]
    public void After_the_whole_batch_fails_twice_the_next_batches_are_halves_then_quarters()
    {
        var bisection = new BatchBisection();
        var batch = Enumerable.Range(0, 64).Select(i => At(i)).ToList();

        bisection.Failed(batch);
        bisection.NextBatchSize(64).Should().Be(64);
        bisection.Failed(batch);
        bisection.NextBatchSize(64).Should().Be(32);
        bisection.Failed(batch.Take(32).ToList());
        bisection.NextBatchSize(64).Should().Be(16);
    }

    [Fact]
    public void A_record_failing_alone_is_charged_even_without_an_isolation_in_progress()
    {
        var bisection = new BatchBisection();

        bisection.Failed([At(7)]).Should().Be(At(7));
        bisection.NextBatchSize(100).Should().Be(1, "it stays suspect until it commits or is dead-lettered");
        bisection.Committed([At(7)]);
        bisection.NextBatchSize(100).Should().Be(100);
    }

    [Fact]
    public void Suspects_of_partitions_that_moved_away_are_forgotten()
    {
        var bisection = new BatchBisection();
        var batch = Enumerable.Range(0, 10).Select(i => At(i)).ToList();
        bisection.Failed(batch);

        bisection.Forget(key => key.TopicPartition == Partition);

        bisection.IsIsolating.Should().BeFalse();
        bisection.NextBatchSize(100).Should().Be(100);
    }
}
