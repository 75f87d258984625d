using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/KafkaTx.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
