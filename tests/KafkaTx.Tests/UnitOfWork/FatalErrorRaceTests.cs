using Confluent.Kafka;
using KafkaTx.Tests.Fakes;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>A Produce of the open transaction on another thread turns the unit Faulted while the owner's commit is in flight.</summary>
public class FatalErrorRaceTests
{
    private static readonly Message<string, string> Record = new() { Key = "k", Value = "v" };

    [Fact]
    public async Task A_fatal_produce_racing_a_commit_that_succeeds_reports_the_commit_and_leaves_the_unit_faulted()
    {
        var (unit, producer) = await TestUnits.CreateReady(o => o.MaxProducerReplacements = 0);
        using var commitStarted = new ManualResetEventSlim();
        using var produceFailed = new ManualResetEventSlim();
        using var produceInside = new ManualResetEventSlim();
        var produceEntered = 0;
        producer.OnBlockingCall = (call, _) =>
        {
            if (call == "Commit")
            {
                commitStarted.Set();
                produceFailed.Wait(TimeSpan.FromSeconds(10)).Should().BeTrue();
            }
        };

        unit.BeginTransaction();
        unit.Produce("t", Record);

        // The second writer of the transaction passed the state check (InTransaction) and is inside the client's
        // Produce when the owner starts committing; its record then fails fatally.
        producer.QueueFull = () =>
        {
            if (Interlocked.Exchange(ref produceEntered, 1) == 0)
            {
                produceInside.Set();
                commitStarted.Wait(TimeSpan.FromSeconds(10)).Should().BeTrue();
            }

            return false;
        };
        producer.ProduceFailures.Enqueue(new ProduceException<byte[]?, byte[]?>(new Error(ErrorCode.InvalidTxnState, "fatal", true), new DeliveryResult<byte[]?, byte[]?>()));
        var writer = Task.Run(() =>
        {
            try
            {
                unit.Produce("t", Record);
                return (KafkaTransactionException?)null;
            }
            catch (KafkaTransactionException e)
            {
                return e;
            }
            finally
            {
                produceFailed.Set();
            }
        });

        produceInside.Wait(TimeSpan.FromSeconds(10)).Should().BeTrue();
        var commit = () => unit.CommitAsync();

        // The commit took effect: CommitAsync says so, and no "may not move from Faulted" escapes the state machine.
        await commit.Should().NotThrowAsync();
        (await writer).Should().NotBeNull().And.Match<KafkaTransactionException>(e => e.Kind == TransactionErrorKind.Fatal);
        unit.State.Should().Be(TransactionState.Faulted, "the other writer's fatal error outlives the commit: the producer is gone");
    }
}
