module example.com/berth-sample-dockerfile

go 1.19
