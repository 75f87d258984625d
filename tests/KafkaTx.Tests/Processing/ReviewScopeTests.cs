using KafkaTx.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using static KafkaTx.Tests.Processing.ProcessorHarness;

namespace KafkaTx.Tests.Processing;

/// <summary>Review of issue 16: the batch's DI scope cannot be created (the root provider is being disposed, say).</summary>
public class ReviewScopeTests
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

        // Before issue 16 the processor's shutdown ended the transaction it had begun (committed, empty); now the
        // batch was never recorded, so the shutdown skips it and the unit is left InTransaction.
        h.Unit.State.Should().NotBe(TransactionState.InTransaction);
    }
}
