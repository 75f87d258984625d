using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaTx.Testing;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace KafkaTx.Tests.Pooling;

/// <summary>
/// A web service's load on a pool, on the in-memory Kafka (read_committed): a thousand concurrent requests through four
/// slots, a third of them cancelled at seeded random points (before, while waiting, during the work, during the
/// commit). Whatever happened, what each caller was told matches what a read_committed reader sees, and the pool
/// still serves through every slot afterwards.
/// </summary>
public class PoolUnderCancellationTests(ITestOutputHelper output)
{
    private const int Calls = 1000;
    private const int PoolSize = 4;
    private const int Seed = 15;

    private enum Plan
    {
        NotCancelled,
        CancelledBefore,
        CancelledAtARandomMoment,
        CancelledDuringTheWork,
        CancelledDuringTheCommit,
    }

    private enum Outcome
    {
        Committed,
        Cancelled,
        OutcomeUnknown,
    }

    [Fact]
    public async Task A_thousand_concurrent_calls_a_third_cancelled_each_tell_the_caller_what_read_committed_shows()
    {
        var kafka = new InMemoryKafkaCluster(defaultPartitions: 4);
        var commits = new CommitSlicingClientFactory(new InMemoryKafkaClientFactory(kafka));
        var services = new ServiceCollection();
        services.AddKafkaTransactions(o =>
        {
            o.TransactionalIdPrefix = "web";
            o.InstanceId = "pod-1";
            o.Retry.BaseDelay = TimeSpan.FromMilliseconds(1);
        }).UseInMemoryKafka(kafka).UseClientFactory(commits).AddUnitOfWorkPool(PoolSize);
        await using var provider = services.BuildServiceProvider();
        var pool = provider.GetRequiredService<ITransactionalUnitOfWorkPool>();
        await pool.InitializeAsync();

        var random = new Random(Seed);
        var plans = Enumerable.Range(0, Calls)
            .Select(_ => random.Next(3) == 0 ? (Plan)(1 + random.Next(4)) : Plan.NotCancelled)
            .ToArray();
        var delays = Enumerable.Range(0, Calls).Select(_ => random.Next(0, 6)).ToArray();
        var cancellations = plans.Select(_ => new CancellationTokenSource()).ToArray();
        var cancelledInCommit = new ConcurrentDictionary<int, bool>();

        var calls = Enumerable.Range(0, Calls).Select(i => RunAsync(i)).ToArray();
        var outcomes = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(60));

        async Task<(Outcome Outcome, Exception? Failure)> RunAsync(int i)
        {
            var cancel = cancellations[i];
            switch (plans[i])
            {
                case Plan.CancelledBefore:
                    await cancel.CancelAsync();
                    break;
                case Plan.CancelledAtARandomMoment:
                    cancel.CancelAfter(TimeSpan.FromMilliseconds(delays[i] * 4));
                    break;
            }

            try
            {
                await pool.ExecuteAsync(async (scope, ct) =>
                {
                    scope.Produce("orders", new Message<string, string> { Key = $"call-{i}", Value = "order" });
                    await Task.Yield(); // real work awaits (a database, say) with the request's token
                    switch (plans[i])
                    {
                        case Plan.CancelledDuringTheWork:
                            cancel.CancelAfter(TimeSpan.FromMilliseconds(delays[i]));
                            await Task.Delay(TimeSpan.FromMinutes(1), ct); // ends only by cancellation
                            break;
                        case Plan.CancelledDuringTheCommit:
                            // The commit takes 30 ms; the request is cancelled once CommitTransaction is running.
                            kafka.DelayNextCommit(scope.TransactionalId, TimeSpan.FromMilliseconds(30));
                            commits.OnNextCommit(scope.TransactionalId, () =>
                            {
                                cancelledInCommit[i] = true;
                                cancel.Cancel();
                            });
                            break;
                        default:
                            await Task.Delay(delays[i] % 2, ct);
                            break;
                    }

                    scope.Produce("audit", new Message<string, string> { Key = $"call-{i}", Value = "order accepted" });
                }, cancel.Token);
                return (Outcome.Committed, null);
            }
            catch (OperationCanceledException)
            {
                return (Outcome.Cancelled, null);
            }
            catch (KafkaTransactionException e) when (e.Kind == TransactionErrorKind.OutcomeUnknown)
            {
                return (Outcome.OutcomeUnknown, e);
            }
            catch (Exception e)
            {
                return ((Outcome)(-1), e);
            }
        }

        var unexpected = outcomes.Select((o, i) => (o, i)).Where(x => x.o.Outcome < 0).ToList();
        unexpected.Should().BeEmpty("every call commits, is cancelled, or has an unknown outcome; got {0}", string.Join("; ", unexpected.Take(3).Select(x => $"call {x.i} ({plans[x.i]}): {x.o.Failure}")));

        var orders = kafka.ReadTopic("orders").GroupBy(r => r.KeyText!).ToDictionary(g => g.Key, g => g.Count());
        var audit = kafka.ReadTopic("audit").GroupBy(r => r.KeyText!).ToDictionary(g => g.Key, g => g.Count());
        var unknown = 0;
        for (var i = 0; i < Calls; i++)
        {
            var visible = (orders.GetValueOrDefault($"call-{i}"), audit.GetValueOrDefault($"call-{i}"));
            switch (outcomes[i].Outcome)
            {
                case Outcome.Committed:
                    visible.Should().Be((1, 1), $"call {i} ({plans[i]}) was told it committed: its records are visible exactly once");
                    break;
                case Outcome.Cancelled:
                    visible.Should().Be((0, 0), $"call {i} ({plans[i]}) was told it was cancelled before its commit: nothing of it is visible");
                    break;
                default:
                    unknown++;
                    visible.Should().BeOneOf([(0, 0), (1, 1)], $"call {i} has an unknown outcome: all of it or none, never part or twice");
                    break;
            }
        }

        var byPlan = Enumerable.Range(0, Calls).GroupBy(i => plans[i]).ToDictionary(g => g.Key, g => g.Select(i => outcomes[i].Outcome).ToList());
        byPlan[Plan.NotCancelled].Should().OnlyContain(o => o == Outcome.Committed);
        byPlan[Plan.CancelledBefore].Should().OnlyContain(o => o == Outcome.Cancelled);
        byPlan[Plan.CancelledDuringTheWork].Should().OnlyContain(o => o == Outcome.Cancelled);
        byPlan[Plan.CancelledDuringTheCommit].Should().OnlyContain(o => o == Outcome.Committed, "a commit that was sent runs to its outcome, whatever the token says");
        cancelledInCommit.Should().HaveCount(byPlan[Plan.CancelledDuringTheCommit].Count, "each of those was cancelled while its CommitTransaction ran");
        plans.Count(p => p != Plan.NotCancelled).Should().BeInRange(Calls / 4, Calls / 2 - 50);
        output.WriteLine(string.Join(", ", byPlan.OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value.Count} ({p.Value.Count(o => o == Outcome.Committed)} committed)")) + $"; unknown outcomes: {unknown}");

        // The pool still serves, through each of its slots.
        var inside = 0;
        var used = new ConcurrentBag<string>();
        await Task.WhenAll(Enumerable.Range(0, PoolSize).Select(i => pool.ExecuteAsync(async (scope, _) =>
        {
            used.Add(scope.TransactionalId);
            Interlocked.Increment(ref inside);
            await Processing.ProcessorHarness.Until(() => Volatile.Read(ref inside) == PoolSize, "every slot holds a call");
            scope.Produce("orders", new Message<string, string> { Key = $"final-{i}", Value = "order" });
        }))).WaitAsync(TimeSpan.FromSeconds(30));
        used.Should().BeEquivalentTo(pool.TransactionalIds);
        kafka.ReadTopic("orders").Count(r => r.KeyText!.StartsWith("final-", StringComparison.Ordinal)).Should().Be(PoolSize);
        ((KafkaTx.Pooling.TransactionalUnitOfWorkPool)pool).CreatedSlots.Should().OnlyContain(s => s.State == TransactionState.Ready);

        foreach (var cancellation in cancellations)
        {
            cancellation.Dispose();
        }
    }

    /// <summary>
    /// Runs each CommitTransaction call of the in-memory producers for at most 10 ms, as librdkafka's calls run in slices
    /// (one second each in KafkaTx): a slow commit then times out and is resumed by the next call, so a cancellation can
    /// land between two calls of one commit. Runs a hook when a transactional.id's next commit call starts.
    /// </summary>
    private sealed class CommitSlicingClientFactory(IKafkaClientFactory inner) : IKafkaClientFactory
    {
        private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(10);
        private readonly ConcurrentDictionary<string, Action> _onNextCommit = new(StringComparer.Ordinal);

        public void OnNextCommit(string transactionalId, Action action) => _onNextCommit[transactionalId] = action;

        public IProducer<byte[]?, byte[]?> CreateProducer(ProducerConfig config, Action<Error> errorHandler, Action<LogMessage> logHandler) =>
            new SlicingProducer(inner.CreateProducer(config, errorHandler, logHandler), config.TransactionalId ?? string.Empty, this);

        public IConsumer<byte[]?, byte[]?> CreateConsumer(ConsumerConfig config, ConsumerEventHandlers handlers) => inner.CreateConsumer(config, handlers);

        private sealed class SlicingProducer(IProducer<byte[]?, byte[]?> producer, string transactionalId, CommitSlicingClientFactory owner) : IProducer<byte[]?, byte[]?>
        {
            public Handle Handle => producer.Handle;

            public string Name => producer.Name;

            public void CommitTransaction(TimeSpan timeout)
            {
                if (owner._onNextCommit.TryRemove(transactionalId, out var hook))
                {
                    hook();
                }

                producer.CommitTransaction(timeout < Slice ? timeout : Slice);
            }

            public void CommitTransaction() => producer.CommitTransaction();

            public void InitTransactions(TimeSpan timeout) => producer.InitTransactions(timeout);

            public void BeginTransaction() => producer.BeginTransaction();

            public void AbortTransaction(TimeSpan timeout) => producer.AbortTransaction(timeout);

            public void AbortTransaction() => producer.AbortTransaction();

            public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout) =>
                producer.SendOffsetsToTransaction(offsets, groupMetadata, timeout);

            public void Produce(string topic, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null) =>
                producer.Produce(topic, message, deliveryHandler);

            public void Produce(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null) =>
                producer.Produce(topicPartition, message, deliveryHandler);

            public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
                producer.ProduceAsync(topic, message, cancellationToken);

            public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
                producer.ProduceAsync(topicPartition, message, cancellationToken);

            public int Poll(TimeSpan timeout) => producer.Poll(timeout);

            public int Flush(TimeSpan timeout) => producer.Flush(timeout);

            public void Flush(CancellationToken cancellationToken = default) => producer.Flush(cancellationToken);

            public int AddBrokers(string brokers) => producer.AddBrokers(brokers);

            public void SetSaslCredentials(string username, string password) => producer.SetSaslCredentials(username, password);

            public void Dispose() => producer.Dispose();
        }
    }
}
