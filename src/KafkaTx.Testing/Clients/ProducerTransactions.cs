using Confluent.Kafka;
using KafkaTx.Testing.Broker;

namespace KafkaTx.Testing.Clients;

/// <summary>
/// The transactional side of an in-memory producer: the epoch it initialized with (a newer one at the coordinator
/// means it is fenced), its open transaction, and the errors that made it fatal or that require an abort. Calls fail
/// with the exception types, codes and IsFatal flags Confluent.Kafka 2.16 raises for the same situation (observed
/// against librdkafka).
/// </summary>
internal sealed class ProducerTransactions(InMemoryKafkaCluster cluster, string? transactionalId, TimeSpan transactionTimeout)
{
    private const string FencedReason = "Local: This instance has been fenced by a newer instance";
    private TransactionalIdState? _state;
    private int _epoch;
    private TransactionRecord? _transaction;
    private Error? _abortRequired;

    /// <summary>Whether the producer has a transactional.id: then every record belongs to a transaction.</summary>
    public bool IsTransactional => transactionalId is not null;

    /// <summary>The error that made the producer unusable (fenced, or a fatal commit or abort); every later call fails with it.</summary>
    public Error? Fatal { get; private set; }

    public void Init()
    {
        if (transactionalId is null)
        {
            throw new KafkaException(new Error(ErrorCode.Local_NotConfigured, "The Transactional API requires transactional.id to be configured"));
        }

        lock (cluster.Sync)
        {
            _state = cluster.Transactions.InitTransactions(transactionalId, transactionTimeout);
            _epoch = _state.Epoch;
            _transaction = null;
            _abortRequired = null;
        }
    }

    public void Begin()
    {
        lock (cluster.Sync)
        {
            var state = RequireInitialized();
            ThrowIfFenced(state);
            if (_transaction is { Status: TransactionStatus.Open })
            {
                throw new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state InTransaction"));
            }

            _transaction = cluster.Transactions.Begin(state);
        }
    }

    public void Commit(TimeSpan timeout)
    {
        TimeSpan wait;
        bool waitsOutDelay;
        lock (cluster.Sync)
        {
            var state = RequireInitialized();
            ThrowIfFenced(state);
            var transaction = RequireTransaction();
            wait = state.Faults.CommitWait(timeout, out waitsOutDelay);
            if (wait == TimeSpan.Zero)
            {
                state.Faults.ClearPendingCommit();
                CompleteCommit(state, transaction);
                return;
            }
        }

        // A slow coordinator: wait outside the lock, then either finish or time out (and resume on the next call).
        Thread.Sleep(wait);
        lock (cluster.Sync)
        {
            var state = RequireInitialized();
            if (!waitsOutDelay && state.Faults.CommitStillPending)
            {
                throw new KafkaRetriableException(new Error(ErrorCode.Local_TimedOut, "Timed out waiting for operation to finish, retry call to resume"));
            }

            state.Faults.ClearPendingCommit();
            ThrowIfFenced(state);
            CompleteCommit(state, RequireTransaction());
        }
    }

    public void Abort()
    {
        lock (cluster.Sync)
        {
            var state = RequireInitialized();
            ThrowIfFenced(state);
            var transaction = RequireTransaction();
            if (state.Faults.TryTakeAbortFailure(out var injected))
            {
                // The transaction stays open: only a new producer's InitTransactions (or the timeout) aborts it.
                Fatal = new Error(injected, $"Failed to abort transaction: {injected}", true);
                throw new KafkaException(Fatal);
            }

            cluster.Transactions.Complete(transaction, commit: false);
            _transaction = null;
            _abortRequired = null;
            state.Faults.ClearPendingCommit();
        }
    }

    public void SendOffsets(IEnumerable<TopicPartitionOffset> offsets, InMemoryGroupMetadata metadata)
    {
        lock (cluster.Sync)
        {
            ThrowIfFenced(RequireInitialized());
            var transaction = RequireTransaction();
            if (cluster.Groups.IsUnreachable(metadata.GroupId))
            {
                // librdkafka retries the request until its timeout, then reports it retriable; the transaction stays open.
                throw new KafkaRetriableException(GroupCoordinator.Unreachable(metadata.GroupId));
            }

            if (StaleMembership(metadata) is { } stale)
            {
                // librdkafka makes a TxnOffsetCommit refused for the group's sake an abortable error of the transaction.
                _abortRequired = stale;
                throw new KafkaTxnRequiresAbortException(stale);
            }

            transaction.AddOffsets(metadata.GroupId, offsets);
        }
    }

    /// <summary>The open transaction a record joins; under the cluster's lock. A fenced producer turns fatal here.</summary>
    public TransactionRecord ForProduce()
    {
        var state = RequireInitialized();
        if (state.Epoch != _epoch)
        {
            Fatal = new Error(ErrorCode.Local_Fenced, FencedReason, true);
            throw InMemoryProducer.Refused(new Error(ErrorCode.Local_Fenced, FencedReason));
        }

        return _transaction is { Status: TransactionStatus.Open } open
            ? open
            : throw InMemoryProducer.Refused(new Error(ErrorCode.Local_State, "Local: Erroneous state: no transaction is open"));
    }

    /// <summary>
    /// The group's check of a transactional offset commit (KIP-447 for the classic protocol, KIP-848 for the consumer
    /// protocol): the member must still belong to the group (UNKNOWN_MEMBER_ID) in the generation, or with the member
    /// epoch, the metadata carries (ILLEGAL_GENERATION classic, STALE_MEMBER_EPOCH consumer). The in-memory group bumps
    /// every member's epoch at each of its rebalances, which for the consumer protocol is stricter than Kafka (only
    /// members whose assignment changed). Metadata without a member (a consumer that never joined) is not checked, as
    /// Kafka does not check it.
    /// </summary>
    private Error? StaleMembership(InMemoryGroupMetadata metadata)
    {
        if (metadata.MemberId.Length == 0)
        {
            return null;
        }

        var group = cluster.Groups.Find(metadata.GroupId);
        if (group?.FindMember(metadata.MemberId) is not { DepartedAt: null })
        {
            return new Error(ErrorCode.UnknownMemberId, $"Failed to commit offsets to transaction on broker: Broker: Unknown member (member '{metadata.MemberId}' of group '{metadata.GroupId}')");
        }

        if (group.Generation == metadata.Generation)
        {
            return null;
        }

        return metadata.ConsumerProtocol
            ? new Error(ErrorCode.StaleMemberEpoch, $"Failed to commit offsets to transaction on broker: Broker: The member epoch is stale (sent {metadata.Generation}, current {group.Generation})")
            : new Error(ErrorCode.IllegalGeneration, $"Failed to commit offsets to transaction on broker: Broker: Specified group generation id is not valid (sent {metadata.Generation}, current {group.Generation})");
    }

    private void CompleteCommit(TransactionalIdState state, TransactionRecord transaction)
    {
        if (state.Faults.TryTakeCommitFailure(out var injected))
        {
            FailCommit(state, transaction, injected);
        }

        if (_abortRequired is { } abortable)
        {
            throw new KafkaTxnRequiresAbortException(abortable);
        }

        cluster.Transactions.Complete(transaction, commit: true);
        _transaction = null;
    }

    /// <summary>Raises an injected commit error in the shape librdkafka gives it (see docs/error-handling.md).</summary>
    private void FailCommit(TransactionalIdState state, TransactionRecord transaction, ErrorCode code)
    {
        switch (code)
        {
            case ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch or ErrorCode.Local_Fenced:
                cluster.Transactions.AbortAndFence(transaction);
                ThrowIfFenced(state);
                break;
            case ErrorCode.InvalidTxnState or ErrorCode.TransactionalIdAuthorizationFailed or ErrorCode.OutOfOrderSequenceNumber or ErrorCode.Local_Fatal:
                Fatal = new Error(code, $"Failed to end transaction: {code}", true);
                throw new KafkaException(Fatal);
            case ErrorCode.ConcurrentTransactions or ErrorCode.NotCoordinatorForGroup or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable:
                return; // retried inside librdkafka: the commit succeeds
            case ErrorCode.Local_TimedOut:
                state.Faults.LeaveCommitPending(); // the next call completes it
                throw new KafkaRetriableException(new Error(ErrorCode.Local_TimedOut, "Timed out waiting for operation to finish, retry call to resume"));
            default:
                _abortRequired = new Error(code, $"EndTxn commit failed: {code}");
                break;
        }
    }

    private TransactionalIdState RequireInitialized() =>
        _state ?? throw new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state Init: call InitTransactions first"));

    private TransactionRecord RequireTransaction() =>
        _transaction is { Status: TransactionStatus.Open } open
            ? open
            : throw new KafkaException(new Error(ErrorCode.Local_State, "Operation not valid in state Ready: no transaction is open"));

    /// <summary>A newer epoch means fenced: by a new instance, by the coordinator's timeout, or by injection.</summary>
    private void ThrowIfFenced(TransactionalIdState state)
    {
        cluster.Transactions.AbortExpired();
        if (state.Epoch != _epoch)
        {
            Fatal = new Error(ErrorCode.Local_Fenced, $"Failed to end transaction: {FencedReason}", true);
            _transaction = null;
            throw new KafkaException(Fatal);
        }
    }
}
