module example.com/berth-sample-go

go 1.19
