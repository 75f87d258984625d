using Confluent.Kafka;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>
/// Which ExecuteAsync a call binds to, for every shape of work a user writes. These are compile checks first (a call
/// that became ambiguous, or bound to the wrong overload, fails the build or the assertion), run through a unit that
/// records which of its two interface methods was called and with what result type: synchronous work reaches the
/// interface through the extensions, wrapped as work with a result.
/// </summary>
public class ExecuteOverloadResolutionTests
{
    private readonly RecordingUnit _recording = new();

    private ITransactionalUnitOfWork Unit => _recording;

    private static readonly Message<string, string> Record = new() { Key = "k", Value = "v" };

    private static void WriteSynchronously(ITransactionScope scope) => scope.Produce("sync-method-group", Record);

    private static int WriteAndCount(ITransactionScope scope)
    {
        scope.Produce("func-method-group", Record);
        return 3;
    }

    private static ValueTask WriteAsync(ITransactionScope scope, CancellationToken cancellationToken)
    {
        scope.Produce("async-method-group", Record);
        return ValueTask.CompletedTask;
    }

    private static ValueTask<int> CountAsync(ITransactionScope scope, CancellationToken cancellationToken) => ValueTask.FromResult(4);

    [Fact]
    public async Task A_one_parameter_statement_lambda_binds_to_the_synchronous_overload()
    {
        Task call = Unit.ExecuteAsync(scope => scope.Produce("orders", Record));
        await call;

        _recording.Calls.Should().Equal("ExecuteAsync<Boolean>");
        _recording.Produced.Should().Equal("orders");
    }

    [Fact]
    public async Task A_one_parameter_block_lambda_binds_to_the_synchronous_overload_with_a_token()
    {
        using var cancellation = new CancellationTokenSource();

        await Unit.ExecuteAsync(scope =>
        {
            scope.Produce("orders", Record);
            scope.Produce("audit", Record);
        }, cancellation.Token);

        _recording.Calls.Should().Equal("ExecuteAsync<Boolean>");
        _recording.Tokens.Should().Equal(cancellation.Token);
        _recording.Produced.Should().Equal("orders", "audit");
    }

    [Fact]
    public async Task A_one_parameter_lambda_with_a_value_binds_to_the_synchronous_overload_with_a_result()
    {
        Task<int> call = Unit.ExecuteAsync(scope =>
        {
            scope.Produce("orders", Record);
            return 42;
        });

        (await call).Should().Be(42);
        _recording.Calls.Should().Equal("ExecuteAsync<Int32>");
    }

    [Fact]
    public async Task Two_parameter_lambdas_still_bind_to_the_interfaces_asynchronous_overloads()
    {
        await Unit.ExecuteAsync(async (scope, ct) =>
        {
            await Task.Yield();
            scope.Produce("after-an-await", Record);
        });
        await Unit.ExecuteAsync((scope, _) =>
        {
            scope.Produce("returning-completed", Record);
            return ValueTask.CompletedTask;
        }, CancellationToken.None);
        var result = await Unit.ExecuteAsync(async (scope, ct) =>
        {
            await Task.Yield();
            return "done";
        });

        result.Should().Be("done");
        _recording.Calls.Should().Equal("ExecuteAsync", "ExecuteAsync", "ExecuteAsync<String>");
        _recording.Produced.Should().Equal("after-an-await", "returning-completed");
    }

    [Fact]
    public async Task Method_groups_bind_by_their_signature()
    {
        await Unit.ExecuteAsync(WriteSynchronously);
        var counted = await Unit.ExecuteAsync(WriteAndCount);
        await Unit.ExecuteAsync(WriteAsync);
        var countedAsync = await Unit.ExecuteAsync(CountAsync);

        counted.Should().Be(3);
        countedAsync.Should().Be(4);
        _recording.Calls.Should().Equal("ExecuteAsync<Boolean>", "ExecuteAsync<Int32>", "ExecuteAsync", "ExecuteAsync<Int32>");
        _recording.Produced.Should().Equal("sync-method-group", "func-method-group", "async-method-group");
    }

    [Fact]
    public async Task A_one_parameter_async_lambda_is_refused_before_a_transaction_begins()
    {
        // It compiles (as work returning a Task), and would commit before the work completed: refused, and it never ran.
        var ran = false;
        var act = () => Unit.ExecuteAsync(async scope =>
        {
            ran = true;
            await Task.Yield();
            scope.Produce("too-late", Record);
        });

        (await act.Should().ThrowAsync<ArgumentException>()).Which.Message.Should()
            .Contain("returns Task").And.Contain("commit before").And.Contain("async (tx, ct) =>");
        ran.Should().BeFalse();
        _recording.Calls.Should().BeEmpty();
    }

    [Fact]
    public async Task One_parameter_work_returning_a_value_task_is_refused_too()
    {
        var act = () => Unit.ExecuteAsync(scope => WriteAsync(scope, CancellationToken.None));
        var withResult = () => Unit.ExecuteAsync(scope => CountAsync(scope, CancellationToken.None));

        (await act.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("returns ValueTask");
        (await withResult.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("returns ValueTask`1");
        _recording.Calls.Should().BeEmpty();
    }

    [Fact]
    public async Task An_async_void_method_given_as_synchronous_work_is_refused()
    {
        Action<ITransactionScope> asyncVoid = WriteLaterAsync;

        var act = () => Unit.ExecuteAsync(asyncVoid);

        (await act.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("async void").And.Contain(nameof(WriteLaterAsync));
        _recording.Calls.Should().BeEmpty();
    }

    // The mistake under test; it is refused, never run.
    private static async void WriteLaterAsync(ITransactionScope scope)
    {
        await Task.Yield();
        scope.Produce("never", Record);
    }

    [Fact]
    public async Task The_pool_has_the_same_synchronous_overloads()
    {
        var pool = new RecordingPool(_recording);

        await pool.ExecuteAsync(scope => scope.Produce("pooled", Record));
        var result = await pool.ExecuteAsync(scope => 7);
        await pool.ExecuteAsync(async (scope, ct) => await Task.Yield());

        result.Should().Be(7);
        _recording.Calls.Should().Equal("ExecuteAsync<Boolean>", "ExecuteAsync<Int32>", "ExecuteAsync");
        _recording.Produced.Should().Equal("pooled");
    }

    /// <summary>Records which interface method ran; the work runs at once, with this unit as its scope.</summary>
    private sealed class RecordingUnit : ITransactionalUnitOfWork
    {
        public List<string> Calls { get; } = [];

        public List<CancellationToken> Tokens { get; } = [];

        public List<string> Produced { get; } = [];

        public TransactionState State => TransactionState.Ready;

        public string TransactionalId => "recording-0";

        public async Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default)
        {
            Calls.Add("ExecuteAsync");
            Tokens.Add(cancellationToken);
            await work(this, cancellationToken);
        }

        public async Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default)
        {
            Calls.Add($"ExecuteAsync<{typeof(TResult).Name}>");
            Tokens.Add(cancellationToken);
            return await work(this, cancellationToken);
        }

        public void Produce<TKey, TValue>(string topic, Message<TKey, TValue> message) => Produced.Add(topic);

        public void Produce<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message) => Produced.Add(topicPartition.Topic);

        public ValueTask ProduceAsync<TKey, TValue>(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
        {
            Produced.Add(topic);
            return ValueTask.CompletedTask;
        }

        public ValueTask ProduceAsync<TKey, TValue>(TopicPartition topicPartition, Message<TKey, TValue> message, CancellationToken cancellationToken = default)
        {
            Produced.Add(topicPartition.Topic);
            return ValueTask.CompletedTask;
        }

        public Task SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task InitializeAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public void BeginTransaction() => throw new NotSupportedException();

        public Task CommitAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task AbortAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task ResetAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        public void Dispose()
        {
        }
    }

    private sealed class RecordingPool(RecordingUnit unit) : ITransactionalUnitOfWorkPool
    {
        public int Size => 1;

        public IReadOnlyList<string> TransactionalIds => [unit.TransactionalId];

        public Task InitializeAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task ExecuteAsync(Func<ITransactionScope, CancellationToken, ValueTask> work, CancellationToken cancellationToken = default) =>
            unit.ExecuteAsync(work, cancellationToken);

        public Task<TResult> ExecuteAsync<TResult>(Func<ITransactionScope, CancellationToken, ValueTask<TResult>> work, CancellationToken cancellationToken = default) =>
            unit.ExecuteAsync(work, cancellationToken);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
