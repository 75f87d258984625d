using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

/// <summary>The batch's DI scope cannot be created (the root provider is being disposed, say).</summary>
public class BatchScopeFailureTests
{
    private sealed class ThrowingScopes : IServiceScopeFactory
    {
        public IServiceScope CreateScope() => throw new ObjectDisposedException("IServiceProvider");
    }

    [Fact]
    public async Task A_batch_scope_that_cannot_be_created_leaves_no_transaction_open_when_the_processor_stops()
    {
        await using var h = new ProcessorHarness(
            o =>
            {
                o.MaxBatchSize = 100;
                o.MaxBatchDuration = TimeSpan.FromSeconds(20);
            },
            wrapScopes: _ => new ThrowingScopes());
        h.Broker.AppendMany("in", 0, 1);

        await h.StartAsync();
        await Until(() => h.Loop.State == ProcessorState.Faulted, "the processor fails");
        await h.Running!.WaitAsync(TimeSpan.FromSeconds(10));

        // The transaction begun for the batch is ended, not left open for transaction.timeout.ms.
        h.Unit.State.Should().Be(TransactionState.Ready);
        h.Loop.Failure.Should().BeOfType<ObjectDisposedException>();
        h.Broker.GroupOffset(P0).Should().BeNull("no record was handled, so no offset was committed");
    }
}
