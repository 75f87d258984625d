using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaTx.Tests.Fakes;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// A real unit of work, driven over the fakes into each reachable state, accepts or refuses each public call exactly
/// as <see cref="TransactionTransitions"/> says: a refusal with the table's message (and nothing changed), an accepted
/// call ending in one of the table's states.
/// </summary>
public class TransitionTableConformanceTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly Message<string, string> Record = new() { Key = "k", Value = "v" };

    public static TheoryData<TransactionState, string> EveryPair() => TransitionTableTests.EveryPair();

    [Theory]
    [MemberData(nameof(EveryPair))]
    public async Task A_unit_in_each_state_accepts_or_refuses_each_call_as_the_table_says(TransactionState state, string callName)
    {
        var call = Enum.Parse<TransactionCall>(callName);
        await using var scenario = await Scenario.InState(state);
        var unit = scenario.Unit;
        unit.State.Should().Be(state);
        var cell = TransactionTransitions.For(state, call);

        var running = Invoke(unit, call);

        if (!cell.IsAccepted)
        {
            var expected = TransactionTransitions.Refusal(call, state, unit.TransactionalId, unit.EndedBy);
            var refused = await running.Awaiting(t => t.WaitAsync(Deadline)).Should().ThrowAsync<Exception>();
            refused.Which.GetType().Should().Be(expected.GetType());
            refused.Which.Message.Should().Be(expected.Message);
            if (expected is KafkaTransactionException typed)
            {
                var actual = (KafkaTransactionException)refused.Which;
                actual.Kind.Should().Be(typed.Kind);
                actual.Error.Code.Should().Be(typed.Error.Code);
                unit.EndedBy.Should().NotBeNull("the unit keeps the error that fenced or faulted it");
            }

            unit.State.Should().Be(state, "a refused call changes nothing");
            return;
        }

        // An accepted call may wait for its turn: the gate, or the call in flight, that the scenario holds.
        if (await Task.WhenAny(running, Task.Delay(TimeSpan.FromMilliseconds(200))) != running)
        {
            await scenario.ReleaseAsync();
        }

        await running.WaitAsync(Deadline);
        cell.EndsIn.Should().Contain(unit.State);
    }

    private static Task Invoke(TransactionalUnitOfWork unit, TransactionCall call)
    {
        try
        {
            switch (call)
            {
                case TransactionCall.Initialize:
                    return unit.InitializeAsync();
                case TransactionCall.Begin:
                    unit.BeginTransaction();
                    return Task.CompletedTask;
                case TransactionCall.Produce:
                    unit.Produce("orders", Record);
                    return Task.CompletedTask;
                case TransactionCall.SendOffsets:
                    return unit.SendOffsetsAsync([new TopicPartitionOffset("in", 0, 1)], new FakeGroupMetadata());
                case TransactionCall.Commit:
                    return unit.CommitAsync();
                case TransactionCall.Abort:
                    return unit.AbortAsync();
                case TransactionCall.Reset:
                    return unit.ResetAsync();
                case TransactionCall.Execute:
                    return unit.ExecuteAsync((_, _) => ValueTask.CompletedTask);
                default:
                    return unit.DisposeAsync().AsTask();
            }
        }
        catch (Exception e)
        {
            return Task.FromException(e);
        }
    }

    /// <summary>A unit brought into one state the way an application gets there, and what lets a call queued behind it go on.</summary>
    private sealed class Scenario : IAsyncDisposable
    {
        private Func<Task>? _release;

        private Scenario(TransactionalUnitOfWork unit, Func<Task>? release = null)
        {
            Unit = unit;
            _release = release;
        }

        public TransactionalUnitOfWork Unit { get; }

        public static async Task<Scenario> InState(TransactionState state)
        {
            switch (state)
            {
                case TransactionState.Uninitialized:
                    return new Scenario(TestUnits.Create().Unit);

                case TransactionState.Initializing:
                {
                    var hold = new ManualResetEventSlim();
                    var (unit, _) = TestUnits.Create(setup: p => p.OnBlockingCall = (c, _) =>
                    {
                        if (c == "Init")
                        {
                            hold.Wait(Deadline);
                        }
                    });
                    var initializing = unit.InitializeAsync();
                    await WaitFor(() => unit.State == TransactionState.Initializing);
                    return new Scenario(unit, async () =>
                    {
                        hold.Set();
                        await initializing.WaitAsync(Deadline);
                    });
                }

                case TransactionState.Ready:
                    return new Scenario((await TestUnits.CreateReady()).Unit);

                case TransactionState.InTransaction:
                {
                    var (unit, _) = await TestUnits.CreateReady();
                    unit.BeginTransaction();
                    return new Scenario(unit, () => unit.AbortAsync());
                }

                case TransactionState.Committing:
                {
                    var unknown = new StrongBox<bool>(true);
                    var (unit, producer) = await TestUnits.CreateReady(o => o.CommitTimeout = TimeSpan.FromMilliseconds(100));
                    producer.CommitsTimeOutWhile(() => Volatile.Read(ref unknown.Value));
                    unit.BeginTransaction();
                    unit.Produce("orders", Record);
                    await unit.Awaiting(u => u.CommitAsync()).Should().ThrowAsync<KafkaTransactionException>();
                    Volatile.Write(ref unknown.Value, false);
                    return new Scenario(unit);
                }

                case TransactionState.Aborting:
                {
                    var (unit, producer) = await TestUnits.CreateReady(o =>
                    {
                        o.AbortTimeout = TimeSpan.FromMilliseconds(100);
                        o.Retry.MaxAttempts = 1;
                    });
                    for (var i = 0; i < 1000; i++)
                    {
                        producer.AbortFailures.Enqueue(KafkaErrors.TimedOut());
                    }

                    producer.OnBlockingCall = (c, _) => Thread.Sleep(c == "Abort" ? 20 : 0);
                    await unit.Awaiting(u => u.ExecuteAsync((_, _) => throw new InvalidDataException("work failed"))).Should().ThrowAsync<KafkaTransactionException>();
                    producer.AbortFailures.Clear();
                    producer.OnBlockingCall = null;
                    return new Scenario(unit);
                }

                case TransactionState.Fenced:
                {
                    var (unit, producer) = await TestUnits.CreateReady();
                    producer.BeginFailures.Enqueue(KafkaErrors.Fenced());
                    unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>();
                    return new Scenario(unit);
                }

                case TransactionState.Faulted:
                {
                    var (unit, producer) = await TestUnits.CreateReady(o => o.MaxProducerReplacements = 0);
                    producer.BeginFailures.Enqueue(KafkaErrors.Fatal());
                    unit.Invoking(u => u.BeginTransaction()).Should().Throw<KafkaTransactionException>();
                    return new Scenario(unit);
                }

                default:
                {
                    var (unit, _) = TestUnits.Create();
                    await unit.DisposeAsync();
                    return new Scenario(unit);
                }
            }
        }

        public async Task ReleaseAsync()
        {
            if (Interlocked.Exchange(ref _release, null) is { } release)
            {
                await release();
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await ReleaseAsync();
            }
            catch (Exception e) when (e is InvalidOperationException or KafkaException)
            {
                // The call under test ended the scenario's transaction already (or the unit): nothing left to release.
            }

            await Unit.DisposeAsync();
        }

        private static async Task WaitFor(Func<bool> condition)
        {
            var started = DateTime.UtcNow;
            while (!condition())
            {
                if (DateTime.UtcNow - started > Deadline)
                {
                    throw new TimeoutException("The unit never reached the state.");
                }

                await Task.Delay(5);
            }
        }
    }
}
