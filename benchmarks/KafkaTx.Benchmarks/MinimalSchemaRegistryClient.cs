using System.Collections.Concurrent;
using System.Net;
using Confluent.SchemaRegistry;

namespace KafkaTx.Benchmarks;

/// <summary>
/// The least of a schema registry that Confluent's AvroSerializer needs to serialize with auto-registration: a
/// subject's schema registered once gets an id, and every later call answers from memory at once, as a
/// CachedSchemaRegistryClient does after its first request. The members a serializer does not call throw.
/// Kept here rather than linked from the tests, whose fake may move.
/// </summary>
internal sealed class MinimalSchemaRegistryClient : ISchemaRegistryClient
{
    private readonly ConcurrentDictionary<(string Subject, string Schema), RegisteredSchema> _registered = new();
    private int _lastId;

    /// <summary>Calls that registered a schema (not answered from memory).</summary>
    public int Registrations => Volatile.Read(ref _lastId);

    public IEnumerable<KeyValuePair<string, string>> Config => [];

    public IAuthenticationHeaderValueProvider AuthHeaderProvider => null!;

    public IWebProxy Proxy => null!;

    public int MaxCachedSchemas => 1000;

    public Task<int> RegisterSchemaAsync(string subject, string avroSchema, bool normalize = false) =>
        RegisterSchemaAsync(subject, new Schema(avroSchema, SchemaType.Avro), normalize);

    public Task<int> RegisterSchemaAsync(string subject, Schema schema, bool normalize = false) =>
        Task.FromResult(Register(subject, schema).Id);

    public Task<RegisteredSchema> RegisterSchemaWithResponseAsync(string subject, Schema schema, bool normalize = false) =>
        Task.FromResult(Register(subject, schema));

    public Task<int> GetSchemaIdAsync(string subject, string avroSchema, bool normalize = false) =>
        GetSchemaIdAsync(subject, new Schema(avroSchema, SchemaType.Avro), normalize);

    public Task<int> GetSchemaIdAsync(string subject, Schema schema, bool normalize = false) =>
        _registered.TryGetValue((subject, schema.SchemaString), out var registered)
            ? Task.FromResult(registered.Id)
            : Task.FromException<int>(new SchemaRegistryException("Schema not found", HttpStatusCode.NotFound, 40403));

    public Task<RegisteredSchema> LookupSchemaAsync(string subject, Schema schema, bool ignoreDeletedSchemas, bool normalize = false) =>
        _registered.TryGetValue((subject, schema.SchemaString), out var registered)
            ? Task.FromResult(registered)
            : Task.FromException<RegisteredSchema>(new SchemaRegistryException("Schema not found", HttpStatusCode.NotFound, 40403));

    /// <summary>No associations: the serializer's default subject name strategy then uses topic-value.</summary>
    public Task<List<Association>> GetAssociationsByResourceNameAsync(string resourceName, string resourceNamespace, string resourceType, List<string> associationTypes, string lifecycle, int offset, int limit) =>
        Task.FromResult(new List<Association>());

    public string ConstructKeySubjectName(string topic, string? recordType = null) => $"{topic}-key";

    public string ConstructValueSubjectName(string topic, string? recordType = null) => $"{topic}-value";

    public Task<Schema> GetSchemaAsync(int id, string? format = null) => throw Unused();

    public Task<Schema> GetSchemaBySubjectAndIdAsync(string subject, int id, string? format = null) => throw Unused();

    public Task<Schema> GetSchemaByGuidAsync(string guid, string? format = null) => throw Unused();

    public Task<RegisteredSchema> GetRegisteredSchemaAsync(string subject, int version, bool ignoreDeletedSchemas = true) => throw Unused();

    public Task<string> GetSchemaAsync(string subject, int version) => throw Unused();

    public Task<RegisteredSchema> GetLatestSchemaAsync(string subject) => throw Unused();

    public Task<RegisteredSchema> GetLatestWithMetadataAsync(string subject, IDictionary<string, string> metadata, bool ignoreDeletedSchemas) => throw Unused();

    public Task<List<string>> GetAllSubjectsAsync() => throw Unused();

    public Task<List<int>> GetSubjectVersionsAsync(string subject) => throw Unused();

    public Task<bool> IsCompatibleAsync(string subject, string avroSchema) => throw Unused();

    public Task<bool> IsCompatibleAsync(string subject, Schema schema) => throw Unused();

    public Task<Compatibility> GetCompatibilityAsync(string? subject = null) => throw Unused();

    public Task<Compatibility> UpdateCompatibilityAsync(Compatibility compatibility, string? subject = null) => throw Unused();

    public Task<AssociationResponse> CreateAssociationAsync(AssociationCreateOrUpdateRequest request) => throw Unused();

    public Task DeleteAssociationsAsync(string resourceId, string resourceType, List<string> associationTypes, bool cascadeLifecycle) => throw Unused();

    public void ClearLatestCaches()
    {
    }

    public void ClearCaches()
    {
    }

    public void Dispose()
    {
    }

    private static NotSupportedException Unused() => new("The benchmark's registry answers only what a serializer with auto-registration asks.");

    private RegisteredSchema Register(string subject, Schema schema) =>
        _registered.GetOrAdd((subject, schema.SchemaString), key =>
            new RegisteredSchema(key.Subject, 1, Interlocked.Increment(ref _lastId), key.Schema, schema.SchemaType, schema.References ?? []));
}
