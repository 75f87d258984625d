using Confluent.Kafka;
using KafkaTx.UnitOfWork;

namespace KafkaTx.Tests.UnitOfWork;

/// <summary>The transition table itself: every (state, call) pair is accepted, with states to end in, or refused with a message.</summary>
public class TransitionTableTests
{
    public static TheoryData<TransactionState, string> EveryPair()
    {
        var data = new TheoryData<TransactionState, string>();
        foreach (var state in Enum.GetValues<TransactionState>())
        {
            foreach (var call in Enum.GetValues<TransactionCall>())
            {
                data.Add(state, call.ToString());
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(EveryPair))]
    public void Every_pair_is_accepted_with_reachable_end_states_or_refused_with_a_message(TransactionState state, string callName)
    {
        var call = Enum.Parse<TransactionCall>(callName);
        var cell = TransactionTransitions.For(state, call);

        if (cell.IsAccepted)
        {
            cell.EndsIn.Should().NotBeEmpty();
            foreach (var end in cell.EndsIn)
            {
                Reachable(state, end).Should().BeTrue($"{call} in {state} may end in {end}, so the single moves must lead there");
            }

            return;
        }

        var endedBy = new Error(state == TransactionState.Fenced ? ErrorCode.ProducerFenced : ErrorCode.InvalidTxnState, "the cause");
        var refusal = TransactionTransitions.Refusal(call, state, "tx-1", endedBy);
        refusal.Message.Should().Contain(TransactionTransitions.Operation(call)).And.Contain(state.ToString());
        if (cell.Kind == TransitionKind.Refused)
        {
            cell.Refusal.Should().NotBeNullOrWhiteSpace();
            refusal.Message.Should().Be($"{TransactionTransitions.Operation(call)} is not valid in state {state} (transactional.id 'tx-1'). {cell.Refusal}");
        }
        else if (cell.Kind == TransitionKind.Terminal)
        {
            state.Should().BeOneOf(TransactionState.Fenced, TransactionState.Faulted, TransactionState.Disposed);
            (refusal is ObjectDisposedException).Should().Be(state == TransactionState.Disposed);
            if (state != TransactionState.Disposed)
            {
                // Kafka's verdict, not a misuse: typed, with the error that ended the unit and what to do.
                var typed = refusal.Should().BeOfType<KafkaTransactionException>().Which;
                typed.Kind.Should().Be(state == TransactionState.Fenced ? TransactionErrorKind.Fenced : TransactionErrorKind.Fatal);
                typed.Error.Code.Should().Be(endedBy.Code);
                typed.State.Should().Be(state);
                typed.TransactionalId.Should().Be("tx-1");
                typed.Message.Should().Contain("'tx-1'").And.Contain(endedBy.Code.ToString()).And.Contain(state == TransactionState.Fenced ? "replace this instance" : "ResetAsync");
            }
        }
        else
        {
            refusal.Should().BeAssignableTo<InvalidOperationException>("a call in the wrong state is the caller's misuse");
        }
    }

    [Fact]
    public void Terminal_states_are_left_for_nothing_but_Disposed()
    {
        foreach (var to in Enum.GetValues<TransactionState>())
        {
            TransactionTransitions.CanMove(TransactionState.Fenced, to).Should().Be(to is TransactionState.Fenced or TransactionState.Disposed);
            TransactionTransitions.CanMove(TransactionState.Disposed, to).Should().Be(to == TransactionState.Disposed);
        }
    }

    [Fact]
    public void Every_call_is_legal_in_some_state_and_Dispose_in_every_state()
    {
        foreach (var call in Enum.GetValues<TransactionCall>())
        {
            Enum.GetValues<TransactionState>().Should().Contain(s => TransactionTransitions.For(s, call).IsAccepted, $"{call} must be legal somewhere");
        }

        Enum.GetValues<TransactionState>().Should().OnlyContain(s => TransactionTransitions.For(s, TransactionCall.Dispose).IsAccepted);
    }

    [Fact]
    public void A_move_the_table_does_not_allow_is_a_bug_and_throws()
    {
        var lifecycle = new TransactionLifecycle(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, "tx-1");

        var act = () => lifecycle.TransitionTo(TransactionState.Committing);

        act.Should().Throw<InvalidOperationException>().WithMessage("*from Uninitialized to Committing*bug*");
        lifecycle.State.Should().Be(TransactionState.Uninitialized);
    }

    private static bool Reachable(TransactionState from, TransactionState to)
    {
        var seen = new HashSet<TransactionState> { from };
        var next = new Queue<TransactionState>([from]);
        while (next.TryDequeue(out var state))
        {
            if (state == to)
            {
                return true;
            }

            foreach (var candidate in Enum.GetValues<TransactionState>())
            {
                if (TransactionTransitions.CanMove(state, candidate) && seen.Add(candidate))
                {
                    next.Enqueue(candidate);
                }
            }
        }

        return false;
    }
}
