using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaTx.Benchmarks;

/// <summary>
/// What a transaction costs KafkaTx itself, with the network taken away (producers that do nothing): the state
/// machine's transitions, the commit run off the caller's thread with its deadline and cancellation, the
/// measurements. Against the same calls made on the producer directly.
/// </summary>
[MemoryDiagnoser]
public class TransactionOverheadBenchmarks
{
    private readonly Message<string, string> _message = new() { Key = "order-42", Value = """{"orderId":"order-42","amount":99.5}""" };
    private readonly NoOpProducer _raw = new();
    private ServiceProvider _services = null!;
    private ITransactionalUnitOfWork _unit = null!;
    private Func<ITransactionScope, CancellationToken, ValueTask> _writeOne = null!;

    [GlobalSetup]
    public void Setup()
    {
        _services = NoOpClientFactory.Services("bench-transaction-overhead");
        _unit = _services.GetRequiredService<ITransactionalUnitOfWork>();
        _unit.InitializeAsync().GetAwaiter().GetResult();
        _writeOne = (scope, _) =>
        {
            scope.Produce("bench-orders", _message);
            return ValueTask.CompletedTask;
        };
    }

    /// <summary>The producer's own calls: begin, one record (serialized as Confluent.Kafka would), commit.</summary>
    [Benchmark(Baseline = true)]
    public void RawBeginProduceCommit()
    {
        _raw.BeginTransaction();
        var key = Serializers.Utf8.Serialize(_message.Key, new SerializationContext(MessageComponentType.Key, "bench-orders"));
        var value = Serializers.Utf8.Serialize(_message.Value, new SerializationContext(MessageComponentType.Value, "bench-orders"));
        _raw.Produce("bench-orders", new Message<byte[]?, byte[]?> { Key = key, Value = value });
        _raw.CommitTransaction(TimeSpan.FromSeconds(30));
    }

    /// <summary>The explicit calls on the unit of work.</summary>
    [Benchmark]
    public async Task ExplicitTransaction()
    {
        _unit.BeginTransaction();
        _unit.Produce("bench-orders", _message);
        await _unit.CommitAsync();
    }

    /// <summary>ExecuteAsync: the gate for concurrent callers, the retry loop, the work delegate.</summary>
    [Benchmark]
    public Task ExecuteAsync() => _unit.ExecuteAsync(_writeOne);

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();
}

/// <summary>Classifying a failure, which every error path does once.</summary>
[MemoryDiagnoser]
public class ClassificationBenchmarks
{
    private readonly KafkaException _fenced = new(new Error(ErrorCode.Local_Fenced, "fenced", true));
    private readonly KafkaException _abortable = new KafkaTxnRequiresAbortException(new Error(ErrorCode.Local_Inconsistent, "abortable"));
    private readonly KafkaException _retriable = new KafkaRetriableException(new Error(ErrorCode.Local_TimedOut, "timed out"));
    private readonly Exception _application = new InvalidOperationException("not Kafka's");

    [Benchmark]
    public TransactionErrorKind? Fenced() => TransactionErrorClassifier.Classify(_fenced);

    [Benchmark]
    public TransactionErrorKind? Abortable() => TransactionErrorClassifier.Classify(_abortable);

    [Benchmark]
    public TransactionErrorKind? Retriable() => TransactionErrorClassifier.Classify(_retriable);

    [Benchmark]
    public TransactionErrorKind? Application() => TransactionErrorClassifier.Classify(_application);

    [Benchmark]
    public TransactionErrorKind ByErrorCode() => TransactionErrorClassifier.Classify(_fenced.Error);
}
