using System.Net;
using Confluent.SchemaRegistry;
using KafkaTx.Serialization;

namespace KafkaTx.Tests.SchemaRegistry;

/// <summary>Which serde failures are the registry's (transient) and which the record's own, with Confluent's real exception type.</summary>
public class SerdeFailureClassifierTests
{
    public static TheoryData<Exception, bool> Failures() => new()
    {
        { new HttpRequestException("Connection refused"), true },
        { new TaskCanceledException("The request timed out"), true },
        { new TimeoutException(), true },
        { new SchemaRegistryException("Internal Server Error", HttpStatusCode.InternalServerError, 50001), true },
        { new SchemaRegistryException("Service Unavailable", HttpStatusCode.ServiceUnavailable, 50003), true },
        { new SchemaRegistryException("Too Many Requests", HttpStatusCode.TooManyRequests, 42901), true },
        { new AggregateException(new HttpRequestException("Connection refused")), true },
        { new InvalidOperationException("wrapped", new HttpRequestException("Connection refused")), true },
        { new HttpRequestException("Bad Gateway", null, HttpStatusCode.BadGateway), true },
        { new SchemaRegistryException("Request Timeout", HttpStatusCode.RequestTimeout, 408), true },
        { new SchemaRegistryException("Unauthorized", HttpStatusCode.Unauthorized, 40101), true },
        { new SchemaRegistryException("Forbidden", HttpStatusCode.Forbidden, 40301), true },
        { new HttpRequestException("Proxy Authentication Required", null, HttpStatusCode.ProxyAuthenticationRequired), true },
        { new HttpRequestException("Unauthorized", null, HttpStatusCode.Unauthorized), true },
        { new SchemaRegistryException("Schema being registered is incompatible", HttpStatusCode.Conflict, 409), false },
        { new SchemaRegistryException("Subject not found", HttpStatusCode.NotFound, 40401), false },
        { new SchemaRegistryException("Schema not found", HttpStatusCode.NotFound, 40403), false },
        { new SchemaRegistryException("Invalid schema", HttpStatusCode.UnprocessableEntity, 42201), false },
        { new InvalidDataException("Expecting data framing of length 5 bytes or more"), false },
        { new InvalidDataException("Expecting message with magic byte 0 but got 123"), false },
        { new HttpRequestException("Not Found", null, HttpStatusCode.NotFound), false },
        { new FormatException("corrupt"), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void A_failure_is_the_registrys_when_it_could_not_be_reached_failed_or_refused_this_client(Exception failure, bool registryUnavailable) =>
        SerdeFailureClassifier.IsRegistryUnavailable(failure).Should().Be(registryUnavailable, failure.Message);
}

