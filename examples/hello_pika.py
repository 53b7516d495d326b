"""Hello World with pika, the blocking client: publish "Hello World!" to queue `hello`,
then consume it.

The queue is declared first (declaring is idempotent), so the message has somewhere to go;
the message goes through the default exchange, which routes by queue name; basic_consume
registers a callback, and start_consuming() runs until the callback has the message and
stops. It runs the same against leveret and RabbitMQ.

    pip install pika
    python examples/hello_pika.py [AMQP_URL]     # default amqp://guest:guest@localhost:5672/%2F
"""

import sys

import pika

url = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F"

# Create a connection and a channel
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

# Declare the queue (idempotent), so the message has somewhere to go
channel.queue_declare(queue="hello")

# Send a message through the default exchange to the queue named by the routing key
channel.basic_publish(exchange="", routing_key="hello", body="Hello World!")
print(" [x] Sent 'Hello World!'")


# Handle a message: print it, then stop consuming
def callback(ch, method, properties, body):
    print(f" [x] Received {body!r}")
    ch.stop_consuming()


channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
channel.start_consuming()

# Close the connection
connection.close()
