//! Replay of pcap and pcapng files into the same events as the live path.
