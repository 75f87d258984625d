using System.Diagnostics;

namespace KafkaTx.IntegrationTests.Samples;

/// <summary>The samples are run as users run them, on their embedded default, and must reach their verdict.</summary>
public sealed class SampleTests
{
    [Fact]
    public async Task AtomicMultiTopicWrites_runs_on_its_embedded_default_and_finds_the_writes_atomic()
    {
        var (exitCode, output) = await RunSampleAsync("AtomicMultiTopicWrites");

        output.Should().Contain("Backend: embedded in-memory Kafka");
        output.Should().Contain("its transaction was aborted");
        output.Should().Contain("in all three topics: yes").And.Contain("in none of them:      yes");
        output.Should().Contain("Verdict: atomic.");
        exitCode.Should().Be(0, output);
    }

    [Fact]
    public async Task ConsumeTransformProduce_is_exactly_once_on_its_embedded_default_through_a_failure_and_a_restart()
    {
        var (exitCode, output) = await RunSampleAsync("ConsumeTransformProduce");

        output.Should().Contain("Backend: embedded in-memory Kafka");
        output.Should().Contain("payment gateway timed out for order-007");
        output.Should().Contain("was aborted and redone");
        output.Should().Contain("a new process starts with the same transactional.id");
        output.Should().Contain("Orders seen: 20 of 20; duplicates: 0.");
        output.Should().MatchRegex("order-007 +1 +1 +1", "the order whose transaction was aborted is there once");
        output.Should().Contain("Verdict: exactly once.");
        exitCode.Should().Be(0, output);
    }

    /// <summary>
    /// Issue 17's sample: the same slow-service handler sequential and at MaxConcurrency 32 in key order, each output
    /// checked from read_committed. Outcomes only: the rates are printed, not asserted (speed belongs to benchmarks).
    /// </summary>
    [Fact]
    public async Task ParallelProcessing_is_exactly_once_and_in_order_per_customer_sequential_and_parallel_on_its_embedded_default()
    {
        var (exitCode, output) = await RunSampleAsync("ParallelProcessing", "--payments", "300");

        output.Should().Contain("Backend: embedded in-memory Kafka");
        output.Should().MatchRegex(@"Sequential \(MaxConcurrency 1\): +300 payments in [0-9.]+ s");
        output.Should().MatchRegex(@"Parallel \(MaxConcurrency 32, key order\): +300 payments in [0-9.]+ s");
        output.Should().Contain("sequential read_committed: 300 of 300 payments; duplicates: 0; out of order per customer: 0.");
        output.Should().Contain("parallel   read_committed: 300 of 300 payments; duplicates: 0; out of order per customer: 0.");
        output.Should().Contain("Verdict: exactly once and in order per customer, sequential and parallel.");
        exitCode.Should().Be(0, output);
    }

    /// <summary>
    /// Issue 20's sample: Avro orders into Avro shipments through Confluent's serdes, on the embedded Kafka and the
    /// in-memory registry, one transaction aborted after writing its shipment, read back read_committed and decoded.
    /// </summary>
    [Fact]
    public async Task SchemaRegistry_ships_every_Avro_order_exactly_once_on_its_embedded_default()
    {
        var (exitCode, output) = await RunSampleAsync("SchemaRegistry");

        output.Should().Contain("Backend: embedded in-memory Kafka");
        output.Should().Contain("Schema registry: embedded in-memory");
        output.Should().Contain("the one holding 'order-004' failed after writing its shipment, was aborted and redone");
        output.Should().MatchRegex(@"Subjects registered: avro-orders-[0-9a-f]{8}-value, avro-shipments-[0-9a-f]{8}-value");
        output.Should().Contain("orders shipped: 10 of 10; duplicates: 0; all 'shipped': yes.");
        output.Should().Contain("order-004, whose first transaction aborted after writing its shipment, shipped 1 time(s).");
        output.Should().Contain("Verdict: exactly once.");
        exitCode.Should().Be(0, output);
    }

    /// <summary>Runs a sample's built dll as a user runs it; with no arguments, on its embedded default.</summary>
    internal static async Task<(int ExitCode, string Output)> RunSampleAsync(string name, params string[] args)
    {
        // The sample is a project reference, so its build output sits next to the tests.
        var dll = Path.Combine(AppContext.BaseDirectory, name + ".dll");
        File.Exists(dll).Should().BeTrue($"{dll} is built with the tests");
        var start = new ProcessStartInfo("dotnet", [dll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.Environment.Remove("KAFKATX_BOOTSTRAP_SERVERS"); // the backend is the one the arguments name, else the embedded default
        start.Environment.Remove("KAFKATX_INSTANCE_ID");
        start.Environment.Remove("KAFKATX_SCHEMA_REGISTRY_URL"); // likewise the registry: the embedded one unless named
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
