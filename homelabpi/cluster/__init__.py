"""What a faasd Pi needs beside the functions: storage setup (`homelabpi cluster setup`)."""
